"""Two-stage S2M training (``s2m-geo train``).

Stage 1 trains the siamese change network on images alone with the segmentation loss
(0.4 focal + 0.3 Dice + 0.3 Lovász-softmax). Stage 2 starts from stage 1 and adds the text:
the S2M sentences of each (augmented) label tile are embedded by a frozen CLIP text encoder,
the text-guided alignment module lets the decoder feature attend to them, and a
bidirectional InfoNCE (τ = 0.7, weight 0.5) pulls the global visual feature towards the
tile's text. Inference never sees text.

The output folder holds a model package per epoch (``checkpoints/``), the optimizer state
next to it (safetensors, no pickle), ``state.json`` (where to resume), ``log.jsonl`` (losses
and validation scores per epoch) and the final package ``model.safetensors``. A run resumed
with ``--resume`` gives the same weights as an uninterrupted one: the data order and the
augmentations are drawn from ``(seed, stage, epoch)``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import atomic
from ..atomic import atomic_path
from ..classes import ClassTable, load_class_table
from ..devices import autocast_dtype, resolve_device
from ..errors import InputError
from ..metrics import confusion_matrix, scd_scores
from ..model import PackageMeta, S2MConfig, build_model, save_package
from ..model.normalization import Normalization
from ..model.package import normalization_for_backbone
from .config import TrainConfig, load_train_config
from .data import IGNORE_INDEX, ChangeTiles, collate, folder_sources, scene_sources
from .losses import S2MLoss, SegmentationLoss

Progress = Callable[[str, int, int], None]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sources(items: list[dict[str, Any]], out_dir: Path, table: ClassTable | None = None) -> list:
    from ..synthetic import SceneSpec, write_scene

    out = []
    for item in items:
        if "folder" in item:
            out += folder_sources(item["folder"])
        elif "scenes" in item:
            out += scene_sources(item["scenes"])
        elif "realmix" in item:  # real tiles with composited changes, generated once into the run folder
            from .realmix import write_realmix

            spec = item["realmix"]
            folder = out_dir / "data" / f"realmix-{spec['size']}-seed{spec['seed']}-n{spec['count']}"
            out += folder_sources(
                write_realmix(folder, spec["images"], spec["count"], spec["seed"], spec["size"], table)
            )
        else:  # synthetic scenes, generated once into the run folder (deterministic)
            spec = item["synthetic"]
            for seed in spec["seeds"]:
                folder = out_dir / "data" / f"synthetic-{spec['size']}-seed{seed}"
                if not (folder / "label.tif").exists():
                    write_scene(folder, SceneSpec(size=spec["size"], seed=seed))
                out += scene_sources(
                    [
                        {
                            "name": f"synthetic-seed{seed}",
                            "pre": folder / "pre.tif",
                            "post": folder / "post.tif",
                            "label": folder / "label.tif",
                        }
                    ]
                )
    return out


def build_datasets(
    cfg: TrainConfig, table: ClassTable, norm: Normalization, out_dir: Path
) -> tuple[ChangeTiles, ChangeTiles | None]:
    """The training tiles (augmented) and the validation tiles (if any)."""
    kw: dict[str, Any] = dict(
        table=table,
        tile_size=cfg.tile_size,
        bands=cfg.bands,
        post_bands=cfg.post_bands,
        normalization=norm,
        seed=cfg.seed,
    )
    train = ChangeTiles(_sources(cfg.train_sources, out_dir, table), augment=True, stride=cfg.stride, **kw)
    val = ChangeTiles(_sources(cfg.val_sources, out_dir, table), augment=False, **kw) if cfg.val_sources else None
    return train, val


@torch.inference_mode()
def evaluate_model(
    model: torch.nn.Module, dataset: ChangeTiles, device: torch.device, batch_size: int = 8
) -> dict[str, Any]:
    """SCD scores of the model's inference path (no text) over a tile dataset."""
    model.eval()
    k = dataset.table.num_classes
    hist = np.zeros((k, k), np.int64)
    dtype = autocast_dtype(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(batch["pre"].to(device), batch["post"].to(device))
        pred = logits.argmax(1).cpu().numpy()
        label = batch["label"].numpy()
        hist += confusion_matrix(pred, label, k, valid=label != IGNORE_INDEX)
    return scd_scores(hist)


# --- optimizer state as safetensors (never pickle) --------------------------------------------


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{key}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = v
    meta = json.dumps({"param_groups": sd["param_groups"], "scalars": scalars})
    with atomic_path(path, create=False) as tmp:
        save_file(tensors, str(tmp), metadata={"optimizer": meta})


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors import safe_open

    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["optimizer"])
        for name in f.keys():
            pid, key = name.split(".", 1)
            state.setdefault(int(pid), {})[key] = f.get_tensor(name)
    for name, v in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


# --- text -------------------------------------------------------------------------------------


def _text_batch(encoder, sentences: list[list[str]], device: torch.device):
    """(B, S, D) sentence embeddings with a (B, S) validity mask, the (B, D) caption
    embedding (mean of the sentences) and caption ids (equal ids = same text)."""
    flat = [s for group in sentences for s in group]
    emb = encoder.encode(flat).to(device)
    s_max = max(len(g) for g in sentences)
    out = emb.new_zeros((len(sentences), s_max, emb.shape[-1]))
    mask = torch.zeros((len(sentences), s_max), dtype=torch.bool, device=device)
    i = 0
    for b, group in enumerate(sentences):
        out[b, : len(group)] = emb[i : i + len(group)]
        mask[b, : len(group)] = True
        i += len(group)
    caption = torch.nn.functional.normalize(out.sum(1) / mask.sum(1, keepdim=True), dim=-1)
    keys = [" ".join(g) for g in sentences]
    ids = torch.tensor([keys.index(k) for k in keys], device=device)
    return out, mask, caption, ids


def _make_text_encoder(cfg: TrainConfig, device: torch.device):
    """The frozen sentence encoder of ``text_encoder:`` (open_clip CLIP or all-MiniLM-L6-v2)."""
    from ..model import create_text_encoder

    t = cfg.text_encoder
    return create_text_encoder(
        t.get("name", "ViT-B-32"),
        t.get("checkpoint"),
        device=device,
        text_cfg=t.get("text_cfg"),
        embed_dim=t.get("embed_dim"),
    )


def _text_info(cfg: TrainConfig, encoder: Any) -> dict[str, Any]:
    """The package's ``training.text_encoder``: the config plus what the encoder really was."""
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.text_encoder.items()}
    return info if encoder is None else dict(info, **encoder.describe())


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: the backbone at ``train.backbone_lr`` (default ``train.lr``), the rest at
    ``train.lr``; a pretrained backbone wants a gentler rate than the new head, and
    ``backbone_lr: 0`` freezes it (see :func:`_freeze_backbone`)."""
    backbone = {id(p) for p in model.backbone.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    lr_b = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr
    groups = [
        {"params": [p for p in params if id(p) in backbone], "lr": lr_b, "base_lr": lr_b}
        if lr_b > 0
        else {"params": []},
        {"params": [p for p in params if id(p) not in backbone], "lr": cfg.lr, "base_lr": cfg.lr},
    ]
    return [g for g in groups if g["params"]]


def _freeze_backbone(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """With ``train.backbone_lr: 0`` the pretrained backbone is a fixed feature extractor: no
    gradients (and no backward pass through it, most of a CPU step's cost) and BatchNorm
    statistics kept as pretrained (eval mode, also while the rest trains)."""
    if cfg.backbone_lr == 0:
        model.backbone.requires_grad_(False)
        model.backbone.eval()


# --- the run ----------------------------------------------------------------------------------


def train(
    config: str | Path | TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: Progress | None = None,
    message: Callable[[str], None] | None = None,
) -> Path:
    """Run both stages; return the path of the final model package (``OUT/model.safetensors``)."""
    cfg = config if isinstance(config, TrainConfig) else load_train_config(config)
    out = Path(out_dir)
    state_file = out / "state.json"
    if state_file.exists() and not resume:
        raise InputError(
            f"{out}: holds an earlier run; pass {{resume}} to continue it or choose another {{out}}",
            params=("resume", "out"),
        )
    if resume and not state_file.exists():
        raise InputError(f"{out}: nothing to resume (no state.json); start without {{resume}}", params=("resume",))
    created = not out.exists()
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    try:
        return _train(cfg, out, resume, progress, message or (lambda s: None))
    except BaseException:
        if created and not state_file.exists():  # nothing to resume: leave no run folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _train(cfg: TrainConfig, out: Path, resume: bool, progress: Progress | None, say: Callable[[str], None]) -> Path:
    """The body of :func:`train` once the run folder exists."""
    state_file = out / "state.json"
    seed_everything(cfg.seed)
    table = load_class_table(cfg.classes)
    device = resolve_device(cfg.device)
    text_encoder = _make_text_encoder(cfg, device) if cfg.stage2_epochs > 0 else None
    s2m_cfg = _model_config(cfg, table, text_encoder)
    model = build_model(s2m_cfg, cfg.pretrained_backbone).to(device)
    _freeze_backbone(model, cfg)
    norm = Normalization.from_dict(cfg.normalization or normalization_for_backbone(s2m_cfg.backbone))
    train_ds, val_ds = build_datasets(cfg, table, norm, out)
    criterion = S2MLoss(
        SegmentationLoss(
            cfg.loss["focal"], cfg.loss["dice"], cfg.loss["lovasz"], gamma=cfg.loss["gamma"], ignore_index=IGNORE_INDEX
        ),
        contrastive_weight=cfg.loss["contrastive"],
        tau=cfg.loss["tau"],
    )
    run = _Run(
        cfg, model, criterion, device, autocast_dtype(device) if cfg.amp else None, text_encoder, train_ds, progress
    )

    def meta(stage: int, epoch: int, metrics: dict[str, Any]) -> PackageMeta:
        return PackageMeta(
            class_table=table,
            config=s2m_cfg,
            bands={"pre": cfg.bands, "post": cfg.post_bands or cfg.bands},
            normalization=norm.to_dict(),
            tile_size=cfg.tile_size,
            default_overlap=max(cfg.tile_size // 8, 16),
            training_gsd_m=table.reference_gsd_m,
            training=dict(
                cfg.to_dict(),
                stage=stage,
                epoch=epoch,
                train_tiles=len(train_ds),
                val_tiles=len(val_ds) if val_ds else 0,
                device=str(device),
                torch=torch.__version__,
                text_encoder=_text_info(cfg, text_encoder),
            ),
            metrics=metrics,
        )

    done: dict[str, Any] = {"stage": 1, "epoch": 0}
    if resume:
        done = json.loads(state_file.read_text())
        from safetensors.torch import load_model

        load_model(model, str(out / done["checkpoint"]), strict=True, device=str(device))
        say(f"resuming after stage {done['stage']} epoch {done['epoch']}")

    last_metrics: dict[str, Any] = {}
    for stage, epochs in ((1, cfg.stage1_epochs), (2, cfg.stage2_epochs)):
        if stage < done["stage"] or epochs == 0:
            continue
        # a fresh optimizer per stage; parameters a stage does not use get no gradient and
        # AdamW leaves them alone (stage 1: the text alignment module)
        opt = torch.optim.AdamW(_param_groups(model, cfg), weight_decay=cfg.weight_decay)
        start = done["epoch"] + 1 if stage == done["stage"] else 1
        if resume and stage == done["stage"] and done["epoch"] > 0:
            _load_optimizer(opt, out / done["optimizer"])
        for epoch in range(start, epochs + 1):
            t0 = time.perf_counter()
            losses, n = run.epoch(opt, stage, epoch, epochs)
            metrics = evaluate_model(model, val_ds, device, cfg.batch_size) if val_ds else {}
            last_metrics = {k: metrics[k] for k in ("sek", "fscd", "miou", "precision", "recall", "oa") if k in metrics}
            name = f"stage{stage}-epoch{epoch:03d}"
            save_package(out / "checkpoints" / f"{name}.safetensors", model, meta(stage, epoch, last_metrics))
            _save_optimizer(opt, out / "checkpoints" / f"{name}.optim.safetensors")
            state = {
                "stage": stage,
                "epoch": epoch,
                "checkpoint": f"checkpoints/{name}.safetensors",
                "optimizer": f"checkpoints/{name}.optim.safetensors",
            }
            atomic.write_json(state_file, state)
            record = {
                "stage": stage,
                "epoch": epoch,
                "seconds": round(time.perf_counter() - t0, 2),
                "steps": n,
                **{k: round(v, 6) for k, v in losses.items()},
                **{f"val_{k}": round(v, 6) for k, v in last_metrics.items()},
            }
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
            say(" ".join(f"{k}={v}" for k, v in record.items()))
    final = out / "model.safetensors"
    save_package(
        final, model, meta(2 if cfg.stage2_epochs else 1, cfg.stage2_epochs or cfg.stage1_epochs, last_metrics)
    )
    return final


def _model_config(cfg: TrainConfig, table: ClassTable, text_encoder: Any) -> S2MConfig:
    """The network's config: the YAML's ``model:`` completed from the class table, the bands
    and the text encoder (an explicit value that contradicts them is an InputError)."""
    model_cfg = dict(cfg.model)
    model_cfg.setdefault("num_classes", table.num_classes)
    model_cfg.setdefault("in_chans", len(cfg.bands))
    if text_encoder is not None:
        model_cfg.setdefault("text_dim", text_encoder.embed_dim)
        if isinstance(model_cfg["text_dim"], int) and model_cfg["text_dim"] != text_encoder.embed_dim:
            raise InputError(
                f"{cfg.path}: model.text_dim is {model_cfg['text_dim']} but text "
                f"encoder '{text_encoder.name}' gives {text_encoder.embed_dim}-d "
                f"embeddings; remove model.text_dim"
            )
    s2m_cfg = S2MConfig.from_dict(model_cfg, str(cfg.path))
    if s2m_cfg.num_classes != table.num_classes:
        raise InputError(
            f"{cfg.path}: model.num_classes is {s2m_cfg.num_classes} but class table "
            f"'{table.name}' has {table.num_classes} classes; remove model.num_classes"
        )
    return s2m_cfg


@dataclass
class _Run:
    """What every training step needs."""

    cfg: TrainConfig
    model: Any
    criterion: S2MLoss
    device: Any
    dtype: Any
    text_encoder: Any
    train_ds: ChangeTiles
    progress: Progress | None

    def steps_per_epoch(self) -> int:
        n = len(self.train_ds) // self.cfg.batch_size if len(self.train_ds) >= self.cfg.batch_size else 1
        return min(n, self.cfg.max_steps_per_epoch) if self.cfg.max_steps_per_epoch else n

    def epoch(self, opt: Any, stage: int, epoch: int, epochs: int) -> tuple[dict[str, float], int]:
        """One epoch; returns the mean of each loss term and the number of steps."""
        cfg, steps = self.cfg, self.steps_per_epoch()
        self.model.train()
        _freeze_backbone(self.model, cfg)
        self.train_ds.set_epoch(stage * 10_000 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + stage * 10_000 + epoch)
        loader = DataLoader(
            self.train_ds,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=gen,
            num_workers=cfg.num_workers,
            collate_fn=collate,
            drop_last=len(self.train_ds) >= cfg.batch_size,
        )
        sums: dict[str, float] = {}
        n = 0
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            if cfg.lr_schedule == "cosine":  # a pure function of the step: resumes exactly
                t = ((epoch - 1) * steps + step) / max(epochs * steps, 1)
                for group in opt.param_groups:
                    group["lr"] = group["base_lr"] * 0.5 * (1.0 + math.cos(math.pi * t))
            loss, parts = self.step(opt, batch, stage)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"training diverged at stage {stage} epoch {epoch} step {step} (loss {loss.item()}); lower train.lr"
                )
            n += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if self.progress:
                self.progress(f"train stage {stage} epoch {epoch}/{epochs}", step + 1, steps)
        return {k: v / max(n, 1) for k, v in sums.items()}, n

    def step(self, opt: Any, batch: dict[str, Any], stage: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimizer step on one batch (a non-finite loss is returned before the update)."""
        device, dtype = self.device, self.dtype
        pre, post = batch["pre"].to(device), batch["post"].to(device)
        label = batch["label"].to(device)
        text = _text_batch(self.text_encoder, batch["sentences"], device) if stage == 2 else None
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            res = self.model.forward_train(pre, post, *(text[:2] if text else ()))
        if text is not None and self.cfg.loss["contrastive"] > 0:
            loss, parts = self.criterion(res.logits.float(), label, res.visual_embed.float(), text[2], text[3])
        else:
            loss, parts = self.criterion(res.logits.float(), label)
        if not torch.isfinite(loss):
            return loss, parts
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        opt.step()
        return loss, parts
