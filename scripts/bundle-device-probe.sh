#!/usr/bin/env bash
# Packs icos_device_probe with every shared library it needs (including the
# dynamic loader) into build/probe-bundle, so it runs on a GPU machine that
# has none of our build dependencies:  bash build/probe-bundle/run.sh [flags]
set -euo pipefail
cd "$(dirname "$0")/.."
probe=${1:-build/release/src/devices/icos_device_probe}
out=build/probe-bundle
rm -rf "$out" && mkdir -p "$out/lib"
cp "$probe" "$out/"
ldd "$probe" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u | while read -r lib; do cp -L "$lib" "$out/lib/"; done
loader=$(ldd "$probe" | awk '/ld-linux/ {print $1}')
cat > "$out/run.sh" <<RUN
#!/usr/bin/env bash
# Runs the probe with the bundled loader and libraries. NVML itself
# (libnvidia-ml.so.1) comes from the host's driver: dlopen finds it there.
here=\$(cd "\$(dirname "\$0")" && pwd)
host_nvml=\$(ldconfig -p 2>/dev/null | awk '/libnvidia-ml.so.1 / {print \$NF; exit}')
exec "\$here/lib/$(basename "$loader")" --library-path "\$here/lib:/usr/lib/x86_64-linux-gnu:/usr/lib64:/usr/local/nvidia/lib64" \
  "\$here/icos_device_probe" \${host_nvml:+--nvml-lib "\$host_nvml"} "\$@"
RUN
chmod +x "$out/run.sh"
du -sh "$out"
