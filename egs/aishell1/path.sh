# Recipe path file: delegate to the repository's path.sh.
. "$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../.." && pwd)/path.sh"
