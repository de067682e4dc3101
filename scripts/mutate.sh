#!/usr/bin/env bash
# Mutation testing (scripts/mutate.py): each mutation of scripts/mutations.tsv applied alone to a
# scratch copy, rebuilt incrementally, the tests of its label run; prints which survived.
#   scripts/mutate.sh                  all mutations
#   scripts/mutate.sh --only online    those whose file or description matches
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/mutate.py" "$@"
