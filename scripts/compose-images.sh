#!/usr/bin/env bash
# Builds the images docker-compose.yml runs, from what this machine has (no image can be
# pulled here, so every image is FROM scratch):
#   portcullis:dev           bin/portcullis (static)
#   portcullis-vault:dev     .cache/bin/vault (static; scripts/install-tools.sh vault)
#   portcullis-registry:dev  .cache/bin/registry3, distribution 3.1.2 (static)
#   portcullis-postgres:dev  Debian's PostgreSQL: postgres, initdb, their shared libraries, dash
#                            for the entrypoint (deploy/compose/images/postgres-entrypoint.sh)
# Build contexts go to .cache/images.
set -euo pipefail
cd "$(dirname "$0")/.."
ctx=.cache/images
rm -rf "$ctx"
mkdir -p "$ctx"

CGO_ENABLED=0 go build -trimpath -o bin/portcullis ./cmd/portcullis
docker build -q -t portcullis:dev -f deploy/compose/Dockerfile . >/dev/null

static_image() { # tag binary name args...
  local tag=$1 bin=$2 name=$3; shift 3
  [ -x "$bin" ] || { echo "compose-images: $bin missing (scripts/install-tools.sh)" >&2; exit 1; }
  mkdir -p "$ctx/$name/rootfs/tmp"
  cp "$bin" "$ctx/$name/rootfs/$name"
  local cmd=""
  if [ $# -gt 0 ]; then cmd=$(printf ', "%s"' "$@"); cmd="CMD [${cmd:2}]"; fi
  printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/%s"]\n%s\n' "$name" "$cmd" >"$ctx/$name/Dockerfile"
  docker build -q -t "$tag" "$ctx/$name" >/dev/null
}
static_image portcullis-vault:dev .cache/bin/vault vault server -dev -dev-root-token-id=root -dev-listen-address=0.0.0.0:8200
static_image portcullis-registry:dev .cache/bin/registry3 registry serve /etc/registry/config.yml

# PostgreSQL: the Debian binaries with the libraries ldd says they load.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgver=$(basename "$(dirname "$pgbin")")
root=$ctx/postgres/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/usr/share" "$root/usr/lib/postgresql/$pgver"
cp -a "$pgbin" "$root/usr/lib/postgresql/$pgver/"
cp -a "/usr/lib/postgresql/$pgver/lib" "$root/usr/lib/postgresql/$pgver/"
cp -a "/usr/share/postgresql" "$root/usr/share/"
cp -a /usr/share/zoneinfo "$root/usr/share/"
cp /bin/dash "$root/bin/sh"
for f in /bin/dash "$pgbin/postgres" "$pgbin/initdb" "/usr/lib/postgresql/$pgver/lib/"*.so; do
  ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}' 
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/:/bin/sh\npostgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"
cp deploy/compose/images/postgres-entrypoint.sh "$root/entrypoint.sh"
chmod 755 "$root/entrypoint.sh"
chmod 1777 "$root/tmp"
mkdir -p "$ctx/postgres/data"
cat >"$ctx/postgres/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=999:999 data/ /var/lib/postgresql/
ENV PATH=/usr/lib/postgresql/$pgver/bin:/bin
USER 999:999
ENTRYPOINT ["/entrypoint.sh"]
DOCKERFILE
docker build -q -t portcullis-postgres:dev "$ctx/postgres" >/dev/null
echo "compose-images: portcullis:dev portcullis-vault:dev portcullis-registry:dev portcullis-postgres:dev"
