#!/usr/bin/env bash
# What issue 5 still owes on a GPU, in one call (a session's device time is short):
# the torch path on the GPU against the CPU path (fp32, fp16, and a semantic
# model), fp16 with and without the fp32 decoding tail TensorRT builds keep
# (bench/fp16_tail.py) and bench/engines.py at batch 1 and 8, FP32 and FP16.
# Prints the tables.
#
# On the lent device machine ../shared does not travel: put the two assets in an
# ignored folder of the checkout first and carry it with the wheels the device lacks:
#   mkdir -p .gpu-assets/video .gpu-assets/models && echo /.gpu-assets/ >> .git/info/exclude
#   cp ../shared/assets/video/vtest.avi .gpu-assets/video/
#   cp ../shared/assets/models/yolov8n-seg_320_fp32.onnx .gpu-assets/models/
#   device run: SEGSTREAM_ASSETS=.gpu-assets bash bench/gpu_checks.sh    (carry: .whl, .gpu-assets)
# DEVICE=cpu runs the same steps on a CPU (the GPU data path forced on), to try the script.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
for wheel in .whl/*.whl; do  # pydantic, pyzmq, pycocotools, onnx2torch: not on the device image (cp312)
    [ -f "$wheel" ] && { "$py" -m pip install -q --no-deps "$wheel" 2>/dev/null || echo "skipped $wheel (not for this Python)"; }
done
"$py" -m pip install -q --no-deps -e . || exit 1
tmp="$(mktemp -d)"
"$py" -c "import sys; sys.path.insert(0, 'tests'); from semantic_models import export_tiny_fcn; export_tiny_fcn('$tmp/fcn21.onnx', classes=21)" || exit 1
force=()
[ "$device" = cpu ] && force=(--device-path)
status=0
for precision in fp32 fp16; do
    echo "== bench/gpu_parity.py --device $device --precision $precision"
    "$py" bench/gpu_parity.py --device "$device" --precision "$precision" "${force[@]}" || status=1
done
echo "== bench/gpu_parity.py --device $device --model fcn21.onnx (a semantic model, random weights)"
"$py" bench/gpu_parity.py --device "$device" --model "$tmp/fcn21.onnx" --frames 100 "${force[@]}" || status=1
if [ "$device" != cpu ]; then  # emulated fp16 on a CPU takes minutes: the numbers that matter are the GPU's
    echo "== bench/fp16_tail.py --device $device (fp16 with and without the fp32 decoding tail)"
    "$py" bench/fp16_tail.py --device "$device" --frames 200 || status=1
fi
echo "== bench/engines.py --batch 1 8 --device $device"
"$py" bench/engines.py --batch 1 8 --device "$device" --frames "${FRAMES:-96}" || status=1
rm -rf "$tmp"
exit $status
