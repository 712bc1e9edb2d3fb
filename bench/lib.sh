# Shared by the benchmark scripts (sourced from the repository root): a release build, a scratch
# folder removed on exit, the server started by the script stopped on exit, and fixed secrets.

cargo build --release --quiet --bin tavana
workdir=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$workdir"
}
trap cleanup EXIT

export TAVANA_JWT_SECRET=bench-signing-key-of-at-least-32-bytes
export TAVANA_ADMIN_PASSWORD=bench-admin-password
export TAVANA_LOG=off

json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }
