# Everyday recipes. `just --list` shows them.

# Run every test: unit, CLI golden tests and one trial per scenario and backend.
test *ARGS:
    cargo test {{ARGS}}

# Run the scenarios on a backend (sim by default), e.g. `just run --filter storage/`.
run *ARGS:
    cargo run --quiet -- run {{ARGS}}

# Check scenario files without running them.
validate *PATHS:
    cargo run --quiet -- validate {{PATHS}}

# Review changed snapshots interactively (needs cargo-insta).
review:
    cargo insta review

# Scaffold a new scenario: `just new redis-auth-mismatch data`.
new NAME AREA="workloads":
    cargo run --quiet -- new {{NAME}} --area {{AREA}}

# Regenerate scenarios/CATALOG.md, the page listing every scenario.
catalog:
    cargo run --quiet -- catalog --write

# Regenerate the committed JSON Schemas for scenario and fixture files.
schema:
    cargo run --quiet -- schema --write

# Start a simulated cluster for kubectl; Ctrl-C stops it.
sim KUBECONFIG="relapse-sim.kubeconfig":
    cargo run --quiet -- sim up --kubeconfig {{KUBECONFIG}}

# The nightly matrix locally: the k3d trials for each k3s version and partition (needs docker + k3d).
nightly VERSIONS="v1.33.1-k3s1 v1.32.5-k3s1 v1.29.15-k3s1":
    for v in {{VERSIONS}}; do for p in 1 2; do RELAPSE_K3S_VERSION=$v RELAPSE_REQUIRE_K3D=1 cargo nextest run --profile ci --test scenarios --partition count:$p/2 -E 'test(/^k3d::/)' || exit 1; cargo run --quiet -- junit-skips target/nextest/ci/junit.xml || exit 1; bash ci/check-k3d-trials.sh || exit 1; done; done
    cargo run --quiet -- gc

# Delete k3d clusters (and with --namespaces, namespaces) left by killed runs.
gc *ARGS:
    cargo run --quiet -- gc {{ARGS}}

# Fuzz the simulated API server for SECONDS after the build (what CI runs); new inputs go into
# fuzz/corpus/sim_api_request, a crash's input into fuzz/artifacts/sim_api_request.
fuzz SECONDS="150":
    FUZZ_SECONDS={{SECONDS}} bash ci/fuzz.sh

# Lint the workflow files under ci/.
lint-workflows:
    bash ci/lint-workflows.sh

# What CI runs.
ci:
    bash .ci/run

# The sim scenarios with every work queue checked on every pass (slow): a controller that
# depends on something it did not read panics with the key the queue missed.
check-queues:
    RELAPSE_CHECK_QUEUES=1 cargo test --test scenarios -- sim::
