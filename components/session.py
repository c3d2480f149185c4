"""The shared sidebar (model, device, dtype, generation settings) and the cached model.

The model is cached with ``st.cache_resource`` keyed by (name, device, dtype): every
argument that changes the loaded weights. Runs build their own engine and KV cache,
so sessions sharing the cached model never share per-run state.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from components import style
from core.config import DEVICES, DTYPES, ConfigError, GenerationConfig, ModelSpec, SamplingConfig
from core.engine import warm_up
from core.engine.cost import device_curve, known_curve
from core.models import EMBEDDED, TINY, LoadedModel, ModelLoadError, load_model
from core.runner import on_decoder
from core.served import Served, ServedError

OTHER = "other (Hugging Face id, folder or .gguf path)"
CHOICES = [EMBEDDED, TINY, "gemma3-270m", OTHER]
LABELS = {
    EMBEDDED: "SmolLM2-135M-Instruct (embedded)",
    TINY: "tiny random llama (tests)",
    "gemma3-270m": "Gemma 3 270M (needs its package)",
    OTHER: OTHER,
}


@dataclass(frozen=True)
class Settings:
    spec: ModelSpec
    gen: GenerationConfig
    served: Served | None = None  # an OpenAI-compatible server for AR, SoT and SGD (core.served)


@st.cache_resource(show_spinner=False, max_entries=3)
def cached_model(name: str, device: str, dtype: str) -> LoadedModel:
    """Loaded and warmed up on the decoding thread, where every torch call of the app runs (core.runner)."""
    model = on_decoder(load_model, ModelSpec(name, device, dtype))
    on_decoder(warm_up, model)
    return model


_DEFAULTS = {
    "model_choice": EMBEDDED,
    "model_other": "",
    "device": "auto",
    "dtype": "auto",
    "max_new_tokens": 64,
    "temperature": 0.0,
    "top_k": 0,
    "top_p": 1.0,
    "seed": 0,
    "served_url": "",
    "served_models": "",
    "served_key_env": "",
    "served_timeout": 60,
    "present": False,
}


def sidebar() -> Settings | None:
    """Draw the shared settings; return them, or None after showing what is wrong.

    Every page calls this first (rather than app.py once) so that a page also works
    when run on its own, as Streamlit's AppTest reruns it. Values live in session
    state under the widget keys and are re-assigned each run: Streamlit drops the
    state of widgets a run did not draw, and a page switch draws a new copy.
    """
    for key, default in _DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, default)
    style.apply()
    if st.session_state.pop("run_stopped", False):
        st.info("The run was stopped before it finished; nothing of it is shown.")
    if style.presenting():
        st.button("Leave the presentation mode", key="leave_present", on_click=_leave_presentation)
    sb = st.sidebar
    sb.toggle("Presentation mode (large type, no sidebar)", key="present")
    sb.header("Settings")
    choice = sb.selectbox("Model", CHOICES, format_func=LABELS.get, key="model_choice")
    name = sb.text_input("Model id or path", key="model_other").strip() if choice == OTHER else choice
    device = sb.selectbox("Device", DEVICES, key="device")
    dtype = sb.selectbox("Dtype", DTYPES, key="dtype")
    max_new = sb.number_input("Max new tokens", 1, 4096, key="max_new_tokens")
    temperature = sb.slider("Temperature (0 = greedy)", 0.0, 2.0, step=0.05, key="temperature")
    top_k = sb.number_input("Top-k (0 = off)", 0, 1000, key="top_k")
    top_p = sb.slider("Top-p", 0.05, 1.0, step=0.05, key="top_p")
    seed = sb.number_input("Seed", 0, 2**31 - 1, key="seed")
    served = _served(sb)
    if not name:
        sb.info("Type a Hugging Face model id, a model folder or a .gguf path.")
        return None
    try:
        return Settings(
            ModelSpec(name, device, dtype),
            GenerationConfig(int(max_new), SamplingConfig(float(temperature), int(top_k), float(top_p), int(seed))),
            served,
        )
    except ConfigError as exc:
        sb.error(str(exc))
        return None


def _leave_presentation() -> None:
    st.session_state["present"] = False
    st.query_params.pop("present", None)


def _served(sb) -> Served | None:
    """The served-model settings (an expander): None until a URL is given, or when they are wrong (said)."""
    with sb.expander("Served model (OpenAI-compatible server)"):
        url = st.text_input("Endpoint URL", key="served_url", placeholder="http://localhost:8000/v1").strip()
        names = st.text_input("Model name(s), cheapest first", key="served_models")
        key_env = st.text_input("API key: environment variable", key="served_key_env", placeholder="OPENAI_API_KEY")
        timeout = st.number_input("Request timeout (s)", 1, 3600, key="served_timeout")
        st.caption(
            "When set, AR, SoT and SGD on the Skeleton graph and Compare pages run through this server; times are "
            "measured by this client. The key is read from the variable at each request and never stored."
        )
    if not url:
        return None
    try:
        return Served(url, tuple(n.strip() for n in names.split(",") if n.strip()), key_env.strip(), float(timeout))
    except ServedError as exc:
        sb.error(str(exc))
        return None


def current_model(settings: Settings | None) -> LoadedModel | None:
    """The cached model for the settings, loading it with a spinner; None (and a message) on failure."""
    if settings is None:
        return None
    spec = settings.spec
    try:
        with st.spinner(f"Loading {spec.name} (the first load of a GGUF de-quantizes it, about a minute)…"):
            model = cached_model(spec.name, spec.device, spec.dtype)
    except ModelLoadError as exc:
        st.sidebar.error(str(exc))
        st.error(str(exc))  # where the user is looking, not only at the foot of the sidebar
        return None
    st.sidebar.caption(model.describe())
    return model


def require_model(settings: Settings | None) -> LoadedModel:
    """The current model, or stop the page with a hint (the sidebar already says what is wrong)."""
    model = current_model(settings)
    if model is None:
        st.info("Choose a model that loads in the sidebar to run.")
        st.stop()
    return model


def bounded_number(container, label: str, lo: int, hi: int, default: int, key: str, **kwargs) -> int:
    """A whole-number input whose range comes from the loaded model; a value kept from a larger model is
    brought back into range first (Streamlit refuses a stored value outside the bounds)."""
    if key in st.session_state and not lo <= st.session_state[key] <= hi:
        st.session_state[key] = min(max(default, lo), hi)
    return int(container.number_input(label, lo, hi, min(max(default, lo), hi), key=key, **kwargs))


PREFILL_WARN_S = 3.0
ATTENTION_TOKENS = 7500  # prefill seconds grow as P (1 + P / 7,500): measured on 2 CPU cores, 512-4,096 tokens


def prefill_seconds(model: LoadedModel, tokens: int) -> float:
    """How long a prompt of ``tokens`` takes to prefill here, from this device's measured forward cost (the
    verify-cost curve's largest forward, per token; measured on the first need), the attention's growth with
    length added."""
    curve = known_curve(model) or on_decoder(device_curve, model)
    per_token = curve["seconds"][-1] / curve["n"][-1]
    return per_token * tokens * (1 + tokens / ATTENTION_TOKENS)


def prefill_warning(model: LoadedModel, prompt: str, key: str) -> None:
    """Before a run whose prompt will take long to prefill: how long, and a button that cuts the prompt to what
    prefills in about ``PREFILL_WARN_S`` seconds (its end: the question usually comes last)."""
    ids = model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) < 256:  # well under a second anywhere this runs
        return
    seconds = prefill_seconds(model, len(ids))
    if seconds <= PREFILL_WARN_S:
        return
    keep = len(ids)
    while keep > 16 and prefill_seconds(model, keep) > PREFILL_WARN_S:
        keep = int(keep * 0.9)
    st.warning(
        f"This prompt is {len(ids):,} tokens: reading it (the prefill) will take about {seconds:.0f} s on this "
        f"machine before the first token."
    )
    cut = model.tokenizer.decode(ids[-keep:])
    st.button(
        f"Cut the prompt to its last {keep:,} tokens (about {PREFILL_WARN_S:.0f} s)",
        key=f"{key}-cut",
        on_click=lambda: st.session_state.update({key: cut}),
    )
