# Two commands for a fresh clone (see README):
#   make demo   install, then run the main job on the shipped sample data
#   make test   install, then run the whole test suite
#   make lint   ruff (lint + format) and mypy
# The virtual environment lives outside the clone (scripts/venv.sh prints where).

SHELL := /bin/bash
VENV = $(shell ./scripts/venv.sh)
PYTEST_ARGS ?=
REALDATA_ARGS ?=

.PHONY: demo test test-fast lint venv sample-data plugin-zip test-qgis benchmark-realdata

venv:
	@./scripts/venv.sh

demo:
	@venv=$$(./scripts/venv.sh) && set -x && \
	"$$venv/bin/s2m-geo" predict sample_data/pre.tif sample_data/post.tif -o changes.gpkg --overwrite

test:
	@venv=$$(./scripts/venv.sh) && \
	"$$venv/bin/python" -m pytest $(PYTEST_ARGS)
	@./scripts/test_qgis.sh

# The inner loop: no slow, integration or real-data tests, no QGIS.
test-fast:
	@venv=$$(./scripts/venv.sh) && \
	"$$venv/bin/python" -m pytest -m "not slow and not integration and not realdata" $(PYTEST_ARGS)

# Style, format and types (configured in pyproject.toml): ruff and mypy, pinned in the lint extra.
lint:
	@venv=$$(./scripts/venv.sh) && \
	"$$venv/bin/ruff" check . && \
	"$$venv/bin/ruff" format --check . && \
	"$$venv/bin/mypy"

# The QGIS plugin's tests alone, in real QGIS 3.22 (Debian), headless; see scripts/test_qgis.sh.
test-qgis:
	@./scripts/test_qgis.sh

# The zip for QGIS's "Install from ZIP": qgis_plugin/dist/s2m_geo_qgis.zip
plugin-zip:
	@python3 qgis_plugin/build_zip.py

# Regenerates sample_data/ exactly as shipped (see sample_data/README.md).
sample-data:
	@venv=$$(./scripts/venv.sh) && \
	"$$venv/bin/s2m-geo" sample-data sample_data --size 1536 --seed 0 --overwrite

# Real-imagery benchmark on ../shared/realdata (skipped when absent), see docs/realdata.md.
# Options through REALDATA_ARGS, e.g. make benchmark-realdata REALDATA_ARGS="--quick --json realdata.json"
benchmark-realdata:
	@venv=$$(./scripts/venv.sh) && \
	"$$venv/bin/python" benchmarks/realdata.py $(REALDATA_ARGS)
