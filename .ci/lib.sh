# Helpers .ci/run, .ci/exercise-check and .ci/clean-exit share. Sourced, not run.

# The passed and failed tests of cargo test's "test result" lines and cargo-nextest's "Summary"
# lines, summed: prints "<passed> <failed>".
tally() {
  awk '/^test result:/ {p += $4; f += $6}
       /^ *Summary \[/ {for (i = 1; i <= NF; i++) {
         if ($i ~ /^passed/) p += $(i - 1); if ($i ~ /^failed/) f += $(i - 1) }}
       END {print p + 0, f + 0}'
}

# The redis-servers of this run, running, one pid per line, sorted. A redis-server works in its
# --dir, and every server a run starts (private ones, cluster nodes, CI's own) has its folder
# under the run's TMPDIR, so a server is this run's when its working folder is there. A server a
# learner or another run started elsewhere on the machine is not counted; a zombie has no working
# folder, so it is not counted either.
our_redis_pids() {
  local pid dir
  # (One pgrep each: pgrep matches at most 15 characters of a name, so no alternation.)
  for pid in $(pgrep -x redis-server; pgrep -x valkey-server); do
    dir=$(readlink "/proc/$pid/cwd" 2>/dev/null) || continue
    # (An if, not `&&`: a last pid that is not ours must not fail the loop under pipefail.)
    if [[ $dir == "${TMPDIR:?}"/* ]]; then echo "$pid"; fi
  done | sort
}

# A free TCP port on loopback, for a server a step starts.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# How many temporary folders of the course's are in this run's TMPDIR.
temp_folders() { find "${TMPDIR:?}" -maxdepth 1 -name 'caching-course-*' 2>/dev/null | wc -l; }

# How many course_ schemas the PostgreSQL database at URL `$1` holds.
schemas_in() { psql "$1" -Atc "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'course\_%'"; }
