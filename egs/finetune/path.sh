# Recipe path file: delegate to the repository's path.sh (FUNASR_LITE_ROOT wins when set, so a
# copy of this recipe directory elsewhere still finds the toolkit).
. "${FUNASR_LITE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../.." && pwd)}/path.sh"
