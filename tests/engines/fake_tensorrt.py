"""A test double of the `tensorrt` module: TensorRT cannot be installed on
machines without an NVIDIA GPU (this CI's), so this stands in for the parts
of the TensorRT 10 Python API that `engines/runtimes/tensorrt.py` calls when
building, and records what the builder was asked to do. It compiles nothing.
Every name it offers is checked against the names in NVIDIA's TensorRT 10
bindings (test_fake_tensorrt_names.py, tensorrt_api/).
"""

from __future__ import annotations

from types import SimpleNamespace

__version__ = "10.99.0-fake"


class Logger:
    WARNING = "warning"

    def __init__(self, severity: str = WARNING) -> None:
        self.severity = severity


MemoryPoolType = SimpleNamespace(WORKSPACE="workspace")
NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)  # kSTRONGLY_TYPED's value in 10 and 11
BuilderFlag = SimpleNamespace(FP16="fp16", INT8="int8", PREFER_PRECISION_CONSTRAINTS="prefer_precision_constraints",
                              TF32="tf32")
LayerType = SimpleNamespace(CONVOLUTION="convolution", DECONVOLUTION="deconvolution", MATRIX_MULTIPLY="matrix_multiply",
                            CONSTANT="constant", OTHER="other")
float32, int64 = "float32", "int64"  # the DataTypes the parser gives tensors here
# What the ONNX parser makes of an operator, for the layer types segstream looks at.
_LAYER_TYPES = {"Conv": LayerType.CONVOLUTION, "ConvTranspose": LayerType.DECONVOLUTION,
                "MatMul": LayerType.MATRIX_MULTIPLY, "Gemm": LayerType.MATRIX_MULTIPLY, "Constant": LayerType.CONSTANT}


class IProgressMonitor:
    def __init__(self) -> None:
        pass


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class _Tensor:
    def __init__(self, name: str, shape: tuple[int, ...] = (), dtype: str = float32) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


class _Layer:
    """One ONNX node as a layer; records the precision constraints set on it."""

    def __init__(self, name: str, type: str, inputs: list[_Tensor | None], outputs: list[_Tensor]) -> None:
        self.name, self.type, self._inputs, self._outputs = name, type, inputs, outputs
        self.precision: str | None = None
        self.output_types: dict[int, str] = {}

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, i: int) -> _Tensor | None:
        return self._inputs[i]

    def get_output(self, i: int) -> _Tensor:
        return self._outputs[i]

    def set_output_type(self, i: int, dtype: str) -> None:
        self.output_types[i] = dtype


class _Network:
    def __init__(self) -> None:
        self.inputs: list[_Tensor] = []
        self.layers: list[_Layer] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> _Tensor:
        return self.inputs[i]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]


class OnnxParser:
    """Parses the file's input and nodes with the onnx package (what TensorRT's
    parser would report: one layer per node here, where TensorRT sometimes
    makes several; tensor types from ONNX shape inference); `PARSE_ERRORS`
    makes it fail like TensorRT does."""

    PARSE_ERRORS: list[str] = []

    def __init__(self, network: _Network, logger: Logger) -> None:
        self.network = network
        self.errors: list[str] = []

    def parse_from_file(self, path: str) -> bool:
        self.network.parsed = path
        if OnnxParser.PARSE_ERRORS:
            self.errors = list(OnnxParser.PARSE_ERRORS)
            return False
        from segstream.engines.runtimes.onnx_info import onnx_inputs_and_metadata

        inputs, _ = onnx_inputs_and_metadata(path)
        self.network.inputs = [_Tensor(i.name, tuple(-1 if d is None else d for d in i.shape)) for i in inputs]
        self.network.layers = _layers(path)
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, minimum: tuple, optimum: tuple, maximum: tuple) -> None:
        self.shapes[name] = (tuple(minimum), tuple(optimum), tuple(maximum))


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+tactics"


class _Config:
    def __init__(self) -> None:
        self.flags: set[str] = {"tf32"}  # as TensorRT: TF32 is on by default
        self.pools: dict[str, int] = {}
        self.profiles: list[_Profile] = []
        self.timing_cache: _TimingCache | None = None
        self.progress_monitor = None
        self.int8_calibrator = None
        self.calibration_profile = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pools[pool] = size

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.flags.discard(flag)

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: _Profile) -> None:
        self.calibration_profile = profile

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self.timing_cache


class Builder:
    """`last_config` keeps the config of the latest build for the tests to read;
    `FAIL` makes `build_serialized_network` return None, as TensorRT does."""

    last_config: _Config | None = None
    last_network: _Network | None = None
    FAIL = False

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        network = _Network()
        network.created_with = flags
        return network

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes | None:
        Builder.last_config = config
        Builder.last_network = network
        if Builder.FAIL:
            return None
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 10)
            for step in range(10):
                monitor.step_complete("Building engine", step)
            monitor.phase_finish("Building engine")
        return b"engine for " + ",".join(t.name for t in network.inputs).encode()


def _layers(path: str) -> list[_Layer]:
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(path, load_external_data=False))
    graph = model.graph
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    tensors: dict[str, _Tensor] = {}

    def tensor(name: str) -> _Tensor | None:
        if not name:
            return None  # an optional input left out
        if name not in tensors:
            tensors[name] = _Tensor(name, dtype=float32 if types.get(name) in floats else int64)
        return tensors[name]

    return [_Layer(node.name, _LAYER_TYPES.get(node.op_type, LayerType.OTHER), [tensor(n) for n in node.input],
                   [tensor(n) for n in node.output]) for node in graph.node]  # type: ignore[misc]
