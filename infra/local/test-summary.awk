# `make test-rust`: pass cargo test's output through, move the CloudWatch EMF metric lines the local
# stacks print on stdout (shared::adapters::emf::EmfStdout, one JSON document a line) to a file, and end
# with one total over every test binary. The exit status stays cargo's (the Makefile sets pipefail).
#   awk -v metrics=target/test-metrics.jsonl -f infra/local/test-summary.awk
BEGIN { if (metrics == "") metrics = "/dev/null" }
/^\{.*"_aws":\{.*"CloudWatchMetrics"/ { print > metrics; hidden++; next }
# "     Running tests/e2e/main.rs (target/debug/deps/e2e-0123abcd)": the test binary, for the failure list.
/^ +Running / { binary = $NF; gsub(/^\(.*\/|-[0-9a-f]+\)$/, "", binary) }
/^test .* \.\.\. FAILED$/ { failures[++nfail] = binary ": " substr($0, 6, length($0) - 16) }
/^test result: / {
  results++
  for (i = 2; i <= NF; i++) {
    if ($i == "passed;") passed += $(i - 1)
    else if ($i == "failed;") failed += $(i - 1)
    else if ($i == "ignored;") ignored += $(i - 1)
  }
}
# Also a binary that crashed (a signal, an abort) and printed no result line.
/^error: test failed, to rerun pass / { broken++ }
{ print; fflush() }
END {
  for (i = 1; i <= nfail; i++) print "  failed: " failures[i]
  printf "%d passed, %d failed, %d ignored", passed, failed, ignored
  if (hidden && metrics == "/dev/null") printf " (%d metric lines hidden)", hidden
  else if (hidden) printf " (%d metric lines moved to %s)", hidden, metrics
  if (broken) printf " in %d failing test binar%s", broken, (broken == 1 ? "y" : "ies")
  if (!results) printf " (no test binary ran: see the build output above)"
  printf "\n"
}
