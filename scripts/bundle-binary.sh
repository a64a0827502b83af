#!/usr/bin/env bash
# Packs a built binary with every shared library it needs (and the dynamic
# loader) into DIR, so it runs on a machine without our build dependencies
# (e.g. a lent GPU machine):  DIR/run.sh [args]
# Usage: scripts/bundle-binary.sh BINARY DIR
set -euo pipefail
bin=$1
out=$2
rm -rf "$out" && mkdir -p "$out/lib"
cp "$bin" "$out/"
ldd "$bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do cp -L "$lib" "$out/lib/"; done
loader=$(ldd "$bin" | awk '/ld-linux/ {print $1}')
name=$(basename "$bin")
cat > "$out/run.sh" <<RUN
#!/usr/bin/env bash
# Runs $name with the bundled loader and libraries; programs it starts use the host's own.
here=\$(cd "\$(dirname "\$0")" && pwd)
exec "\$here/lib/$(basename "$loader")" --library-path "\$here/lib" "\$here/$name" "\$@"
RUN
chmod +x "$out/run.sh"
du -sh "$out" | cut -f1
