#!/usr/bin/env bash
# Runs the side-by-side benchmark (see README.md in this folder): builds the
# Go drivers (this library, asynq, the Carmine protocol) and the BullMQ
# driver, starts one dedicated redis-server on a free loopback port with
# persistence off (never 6379), runs every scenario 3 times with the systems
# alternating, and prints Markdown tables of medians, also written to
# results.md. A full run takes about 30 minutes on 2 cores;
#   bench/run.sh --quick
# runs every scenario once at small sizes in under 2 minutes, for a check.
# Other flags go to the orchestrator (go run . -h lists them), e.g.
#   bench/run.sh -runs 1 -scenarios idle+100k,light+100k -systems mq,asynq
set -euo pipefail
cd "$(dirname "$0")"

need() {
	command -v "$1" >/dev/null && return
	echo "run.sh: installing $2 (needs root and apt)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need redis-server redis-server
need node nodejs
need npm npm

# npm install, not npm ci: npm 11 rejects this lock file for optional
# packages of other platforms (msgpackr-extract); the lock still pins versions.
(cd bullmq && npm install --silent --no-audit --no-fund)
bin="$(mktemp -d)/mq-bench"
go build -o "$bin" .
exec "$bin" -out results.md "$@"
