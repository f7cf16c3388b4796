# bench/lib/stats.sh
# Summary statistics for the benchmarks' rounds. Sourced.

# median [VALUE...]: the median of the values given, or of the numbers read from standard input when none are (and
# it is not a terminal: an empty round list prints nothing instead of waiting).
median() {
  { if [ $# -gt 0 ]; then printf '%s\n' "$@"; elif [ ! -t 0 ]; then cat; fi; } |
    tr -s ' \t' '\n' | grep -v '^$' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
