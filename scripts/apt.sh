# Sourced by the project's scripts: apt_install PKG... installs only the Debian packages that are
# missing, running `apt-get update` at most once per script run.
apt_updated=0
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # Root installs directly; anyone else through sudo (which asks for a password if it must).
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "installing Debian packages: ${missing[*]}" >&2
    if [ "$apt_updated" = 0 ]; then "${sudo[@]}" apt-get update -qq; apt_updated=1; fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
