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

# Regenerate the committed JSON Schemas for scenario and fixture files.
schema:
    cargo run --quiet -- schema --write

# Start a simulated cluster for kubectl; Ctrl-C stops it.
sim KUBECONFIG="relapse-sim.kubeconfig":
    cargo run --quiet -- sim up --kubeconfig {{KUBECONFIG}}

# What CI runs.
ci:
    bash .ci/run
