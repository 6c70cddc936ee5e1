#!/usr/bin/env bash
# The GPU checks, in one call (a session's device time is short): the torch path
# on the GPU against the CPU path (fp32, fp32 with TF32, fp16, and a semantic
# model), fp16 with and without the fp32 decoding tail TensorRT builds keep
# (bench/fp16_tail.py), bench/engines.py at batch 1 and 8, FP32 and FP16,
# bench/torch_gpu.py (CUDA graphs, TF32), and `segstream run` over the whole
# video (seg fp32 with and without a CUDA graph, fp16; pose + re-id). Prints the
# tables; the runs' tracks go to $OUT for scoring. STEPS="parity engines ..." picks.
#
# On the lent device machine ../shared does not travel: put the assets in an
# ignored folder of the checkout first and carry it with the wheels the device lacks:
#   mkdir -p .gpu-assets/video .gpu-assets/models && echo /.gpu-assets/ >> .git/info/exclude
#   cp ../shared/assets/video/vtest.avi .gpu-assets/video/
#   cp ../shared/assets/models/{yolov8n-seg_320_fp32.onnx,yolov8n_320_fp32.onnx,yolo11n-pose.onnx,osnet_x0_25_msmt17.onnx*} .gpu-assets/models/
#   device run: SEGSTREAM_ASSETS=.gpu-assets bash bench/gpu_checks.sh    (carry: .whl, .gpu-assets)
# DEVICE=cpu runs the same steps on a CPU (the GPU data path forced on), to try the script.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
# pydantic, pyzmq, pycocotools, onnx2torch: not on the device image. The wheels are
# cp312 and the machine has no package index, so: no index, no build, a --target
# folder on the path, and the checkout laid out as the `segstream` package by links
# (setup.cfg's package_dir) instead of `pip install -e` (which would try to fetch
# setuptools for its isolated build).
if ls .whl/*.whl >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
pkg="$(mktemp -d)" && mkdir "$pkg/segstream" && ln -s "$PWD"/api/* "$pkg/segstream/" || exit 1
for d in stream engines tracking pipelines; do ln -s "$PWD/$d" "$pkg/segstream/$d"; done
export PYTHONPATH="$pkg:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$py" -c 'import torch, onnxruntime, zmq, pydantic, cv2; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "| onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())' || exit 1
tmp="$(mktemp -d)"
"$py" -c "import sys; sys.path.insert(0, 'tests'); from semantic_models import export_tiny_fcn; export_tiny_fcn('$tmp/fcn21.onnx', classes=21)" || exit 1
force=()
[ "$device" = cpu ] && force=(--device-path)
status=0
parity() {
    echo "== bench/gpu_parity.py --device $device $*"
    "$py" bench/gpu_parity.py --device "$device" "${force[@]}" "$@" || status=1
}
# STEPS picks sections (default all): parity semantic tail engines torch e2e
steps=" ${STEPS:-parity semantic tail engines torch e2e} "
want() { [[ "$steps" == *" $1 "* ]]; }
if want parity; then
    parity --precision fp32
    parity --precision fp32 --tf32
    parity --precision fp16
fi
want semantic && parity --model "$tmp/fcn21.onnx" --frames 100  # a semantic model, random weights
if want tail && [ "$device" != cpu ]; then  # emulated fp16 on a CPU takes minutes: the numbers that matter are the GPU's
    echo "== bench/fp16_tail.py --device $device (fp16 with and without the fp32 decoding tail)"
    "$py" bench/fp16_tail.py --device "$device" --frames 200 || status=1
fi
if want engines; then
    echo "== bench/engines.py --batch 1 8 --workers 1 8 --device $device"
    "$py" bench/engines.py --batch 1 8 --workers 1 8 --device "$device" --frames "${FRAMES:-96}" || status=1
fi
if want torch; then
    echo "== bench/torch_gpu.py --device $device (CUDA graphs, TF32, a model no graph can hold)"
    "$py" bench/torch_gpu.py --device "$device" || status=1
fi
# The user's command on the GPU, the whole video: tracks go to $OUT (or the temp
# folder) as MOTChallenge files named for TrackEval, to score against the ground
# truth where TrackEval is installed (bench/pets_e2e.py's scoring, on the CPU).
assets="${SEGSTREAM_ASSETS:-../shared/assets}"
tracks="${OUT:-$tmp}"
run() {  # name, flags...
    local name="$1"; shift
    echo "== segstream run --device $device $* -> $name"
    mkdir -p "$tracks/$name"
    "$py" -m segstream run --source "$assets/video/vtest.avi" --backend torch --device "$device" --no-progress \
        --max-frames "${E2E_FRAMES:-795}" --export "$tracks/$name/PETS09-S2L1.txt" "$@" || status=1
}
seg=(--model "$assets/models/yolov8n-seg_320_fp32.onnx" --classes person)
if want e2e; then
    run seg_fp32 "${seg[@]}"
    if [ "$device" != cpu ]; then
        run seg_fp32_eager "${seg[@]}" --no-cuda-graph
        run seg_fp16 "${seg[@]}" --precision fp16
        run pose_reid --model "$assets/models/yolo11n-pose.onnx" --tracker deepsort --appearance reid \
            --reid-model "$assets/models/osnet_x0_25_msmt17.onnx"
    fi
fi
rm -rf "$tmp"
exit $status
