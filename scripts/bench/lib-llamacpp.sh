# shellcheck shell=sh
# llama.cpp for the benchmarks (scripts/bench/generate, scripts/bench/serve), from the npm
# package node-llama-cpp alone: its prebuilt CPU bindings, and the llama.cpp source it ships as a
# git bundle (llama/gitRelease.bundle), which llamacpp_tools builds with cmake into a cache, so
# that nothing but the npm packages comes from the network.  Sourced (POSIX sh):
#   . scripts/bench/lib-llamacpp.sh
#   llamacpp_npm DIR        node-llama-cpp and its linux-x64 bindings in DIR/node_modules
#   llamacpp_tools DIR CACHE TOOL...
#                           the llama.cpp programs TOOL (llama-server, llama-bench, ...) built
#                           from the source in DIR's node-llama-cpp, under
#                           CACHE/llama.cpp-COMMIT/build/bin; prints that folder.  Built once
#                           (10 to 15 minutes on 2 cores), then reused.
# Environment: JOBS, the build's parallel jobs (default 2).  Needs npm, git, cmake and a C++
# compiler; the build is tuned to this CPU (GGML_NATIVE, -march=native).
LLAMACPP_NPM_VERSION=3.21.1

llamacpp_npm() {
	mkdir -p "$1"
	if [ ! -d "$1/node_modules/node-llama-cpp" ]; then
		[ -f "$1/package.json" ] || echo '{"private":true}' > "$1/package.json"
		(cd "$1" && npm i -E --omit=optional --no-audit --no-fund \
			"node-llama-cpp@$LLAMACPP_NPM_VERSION" \
			"@node-llama-cpp/linux-x64@$LLAMACPP_NPM_VERSION" >&2)
	fi
}

llamacpp_tools() {
	llamacpp_bundle=$1/node_modules/node-llama-cpp/llama/gitRelease.bundle
	llamacpp_cache=$2
	shift 2
	llamacpp_npm "${llamacpp_bundle%%/node_modules/*}" || return 1
	llamacpp_commit=$(git bundle list-heads "$llamacpp_bundle" |
		awk '$2 == "HEAD" { print substr($1, 1, 12) }')
	[ -n "$llamacpp_commit" ] || { echo "$llamacpp_bundle: no HEAD in the bundle" >&2; return 1; }
	llamacpp_root=$llamacpp_cache/llama.cpp-$llamacpp_commit
	llamacpp_missing=
	for llamacpp_t; do
		[ -x "$llamacpp_root/build/bin/$llamacpp_t" ] ||
			llamacpp_missing="$llamacpp_missing $llamacpp_t"
	done
	if [ -n "$llamacpp_missing" ]; then
		mkdir -p "$llamacpp_cache"
		if [ ! -d "$llamacpp_root/src" ]; then
			rm -rf "$llamacpp_root/src.tmp"
			git -c advice.detachedHead=false clone -q "$llamacpp_bundle" \
				"$llamacpp_root/src.tmp" >&2 || return 1
			mv "$llamacpp_root/src.tmp" "$llamacpp_root/src"
		fi
		# Offline: no web UI (neither built with npm nor downloaded), no TLS, no tests or
		# examples; static, so that the programs run from the cache as they are.
		if [ ! -f "$llamacpp_root/build/CMakeCache.txt" ]; then
			cmake -S "$llamacpp_root/src" -B "$llamacpp_root/build" \
				-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
				-DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
				-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
				>&2 || return 1
		fi
		echo "building llama.cpp $llamacpp_commit:$llamacpp_missing (once, into $llamacpp_root)" >&2
		# shellcheck disable=SC2086
		cmake --build "$llamacpp_root/build" -j "${JOBS:-2}" --target $llamacpp_missing \
			>"$llamacpp_root/build.log" 2>&1 ||
			{ tail -n 30 "$llamacpp_root/build.log" >&2; return 1; }
	fi
	echo "$llamacpp_root/build/bin"
}
