# Two commands for a newcomer: `make book` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# MathJax is served from the built book itself so that its math renders offline. It comes
# from the npm registry at install time (pinned, checksum verified) and is copied into the
# HTML by `html_extra_path` in _config.yml.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX_ROOT := $(VENV)/share/book-extra
MATHJAX := $(MATHJAX_ROOT)/_static/mathjax/tex-mml-chtml.js

.PHONY: install test book bench lint clean mathjax browser sandbox

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" > /dev/null
	touch $(STAMP)

$(MATHJAX):
	rm -rf $(MATHJAX_ROOT) && mkdir -p $(MATHJAX_ROOT)/_static/mathjax
	cd $(MATHJAX_ROOT) && npm pack --silent mathjax@$(MATHJAX_VERSION) > /dev/null
	echo "$(MATHJAX_SHA256)  $(MATHJAX_ROOT)/mathjax-$(MATHJAX_VERSION).tgz" | sha256sum --check --quiet
	tar -xzf $(MATHJAX_ROOT)/mathjax-$(MATHJAX_VERSION).tgz -C $(MATHJAX_ROOT) \
	  package/LICENSE package/es5/tex-mml-chtml.js package/es5/input package/es5/output/chtml \
	  package/es5/output/chtml.js package/es5/a11y package/es5/ui package/es5/sre
	cp -R $(MATHJAX_ROOT)/package/LICENSE $(MATHJAX_ROOT)/package/es5/. $(MATHJAX_ROOT)/_static/mathjax/
	rm -rf $(MATHJAX_ROOT)/package $(MATHJAX_ROOT)/mathjax-$(MATHJAX_VERSION).tgz

mathjax: $(MATHJAX)

# Bubblewrap, the sandbox that student code runs in when autograding (Debian's package);
# `make autograde` refuses to run student code without it (see solutions/README.md).
sandbox:
	command -v bwrap > /dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap)

# Headless Chromium for the browser checks in tests/test_book.py (Debian's package).
browser:
	command -v chromium > /dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: install $(MATHJAX)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

book: install $(MATHJAX)
	$(BIN)/jupyter-book build . -W -n --keep-going
	touch _build/html/.book-built  # tells tests/test_book.py that the HTML is up to date

bench: install
	$(BIN)/python bench/bench_layers.py

# The share of each assignment's catalog mistakes its visible tests catch (CI requires 80%).
.PHONY: coverage-report
coverage-report: install
	$(BIN)/python bench/coverage_report.py $(ASSIGNMENT)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf _build

# Instructor workflow for the graded exercises (tools/course.py; see solutions/README.md).
# ASSIGNMENT=04_normalization limits a target to one assignment; FORCE=1 regrades.
COURSE := $(BIN)/python tools/course.py

.PHONY: release autograde feedback grades

release: install
	$(COURSE) release $(ASSIGNMENT)
	$(COURSE) publish $(ASSIGNMENT)

autograde: install
	$(COURSE) autograde $(ASSIGNMENT) $(if $(FORCE),--force) $(if $(JOBS),--jobs $(JOBS))

feedback: install
	$(COURSE) feedback $(ASSIGNMENT)

grades: install
	$(COURSE) grades $(if $(ROSTER),--roster $(ROSTER))

# Authoring: NAME=07_whitening [CHAPTER=book/XX_name.ipynb] [TITLE="..."] scaffolds an
# assignment; `make check NAME=...` runs its fast checks (tools/authoring.py).
.PHONY: new check

new: install
	$(COURSE) new $(NAME) $(if $(CHAPTER),--chapter $(CHAPTER)) $(if $(TITLE),--title "$(TITLE)")

check: install
	$(COURSE) check $(NAME)

# nbgrader's exchange (NBGRADER_COURSE_ID, NBGRADER_EXCHANGE) or an LMS zip (ZIP=, ROSTER=);
# see solutions/README.md and solutions/DEPLOY.md.
.PHONY: collect return due

collect: install
	$(COURSE) collect $(ASSIGNMENT) $(if $(ZIP),--zip $(ZIP)) $(if $(ROSTER),--roster $(ROSTER))

return: install
	$(COURSE) return $(ASSIGNMENT)

due: install
	$(COURSE) due $(ASSIGNMENT) "$(DUE)"
