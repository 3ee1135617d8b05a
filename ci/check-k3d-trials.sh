#!/usr/bin/env bash
# Fails when a nightly k3d job ran no k3d trial: its JUnit report (nextest's, default
# target/nextest/ci/junit.xml) holds no `k3d::` test case that ran. Trials ignored when listed
# (the scenario skips k3d, k3d cannot reproduce it, no Docker) are left out of nextest's report,
# or appear with a <skipped> child when junit.report-skipped asks for them; neither counts.
# A failed trial ran: the nextest step reports its failure.
#
# Usage: bash ci/check-k3d-trials.sh [JUNIT_FILE]
set -euo pipefail
junit="${1:-target/nextest/ci/junit.xml}"
if [[ ! -f "$junit" ]]; then
    echo "::error title=no k3d trial ran::no JUnit report at $junit: the k3d trials did not run"
    exit 1
fi
# One tag per line (nextest writes attributes on the tag's line and escapes '>' in values),
# then: a self-closing <testcase/> ran; an open one ran unless a <skipped> precedes its end.
read -r ran skipped < <(
    grep -oE '<testcase [^>]*>|<skipped[ />]|</testcase>' "$junit" | awk '
        /^<testcase / {
            name = ""
            if (match($0, / name="[^"]*"/)) name = substr($0, RSTART + 7, RLENGTH - 8)
            k3d = (index(name, "k3d::") == 1)
            is_skipped = 0
            if ($0 ~ /\/>$/) { if (k3d) ran++; k3d = 0 }
            next
        }
        /^<skipped/ { is_skipped = 1; next }
        /^<\/testcase>/ {
            if (k3d) { if (is_skipped) skipped++; else ran++ }
            k3d = 0
        }
        END { printf "%d %d\n", ran, skipped }
    '
)
echo "k3d trials in $junit: $ran ran, $skipped reported skipped"
if [[ "$ran" -eq 0 ]]; then
    echo "::error title=no k3d trial ran::$junit shows no k3d trial that ran: every k3d trial of this job was skipped or none was selected, so this job tested nothing on a real k3s cluster"
    exit 1
fi
