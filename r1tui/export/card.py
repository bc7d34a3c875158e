"""The model card (README.md with YAML metadata) that travels with a pushed model.

Everything in it is read from the run folder or computed: the licence of the base
(a derivative must carry it: MRL for Mistral-Small-Instruct-2409, Apache-2.0 for the
24B models and the tiny model), the frozen training config, the LoRA size from the
calculator, masking statistics (data/stats.json), the evaluation table
(eval/results.json, when present), the GGUF files with their sizes and types
(the export manifest), the tokenizer parity result, what quantization cost against the
F16 (gguf/quality.json) and how to run it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from r1tui.config import Config
from r1tui.data.tokenizer import tokenizer_spec
from r1tui.export.quality import markdown as quality_markdown
from r1tui.export.quality import read_quality
from r1tui.present import format_bytes
from r1tui.quants import IMATRIX_PREFIX, label_of, quant_of
from r1tui.runs.files import fingerprint, read_json, read_json_object, write_text_atomic
from r1tui.runs.layout import RunLayout

MRL_LINK = "https://mistral.ai/licenses/MRL-0.1.md"
HUB_LICENCE_IDS = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
                   "openrail", "llama3", "llama3.1", "llama3.2", "gemma", "gpl-3.0", "bsd-3-clause"}
TAGS = ["gguf", "llama.cpp", "ollama", "lora", "peft", "mistral", "reasoning", "distillation", "r1tui"]


def _layout(run: Path | RunLayout) -> RunLayout:
    return run if isinstance(run, RunLayout) else RunLayout(Path(run))


def read_parity(run_dir: Path | RunLayout) -> dict[str, Any]:
    """parity.json, the last export's tokenizer check ({} when there is none)."""
    return read_json_object(_layout(run_dir).parity)


def checked_ggufs(run_dir: Path | RunLayout, parity: dict[str, Any]) -> list[Path]:
    """The GGUFs the last export made and checked for tokenizer parity."""
    return [_layout(run_dir).gguf_dir / name for name in (parity.get("files") or {})]


def published_ggufs(run_dir: Path | RunLayout, config: Config, parity: dict[str, Any] | None = None) -> list[Path]:
    """The GGUFs that push uploads: the checked ones, F16 only when it is a configured type,
    of two imatrix twins the one(s) ``export.imatrix_publish`` names. A GGUF left over from
    an earlier export, or copied in, is never one of them."""
    checked = checked_ggufs(run_dir, read_parity(run_dir) if parity is None else parity)
    files = [p for p in checked if p.is_file()]
    keep_f16 = "F16" in config.export.quant_types
    files = [p for p in files if keep_f16 or quant_of(p) != "F16"] or files
    # Of a plain quant and its imatrix twin, the one export.imatrix_publish names (or both).
    labels = {label_of(p) for p in files}
    twins = {quant for quant in labels if quant and IMATRIX_PREFIX + quant in labels}
    publish = config.export.imatrix_publish
    if publish == "imatrix":
        return [p for p in files if label_of(p) not in twins]
    if publish == "plain":
        return [p for p in files if (label_of(p) or "").removeprefix(IMATRIX_PREFIX) not in twins
                or label_of(p) in twins]
    return files


def parity_is_current(run_dir: Path | RunLayout, parity: dict[str, Any]) -> bool:
    """parity.json still describes the files on disk (none rewritten or removed since):
    the export's own fingerprint of the checked files, taken again."""
    checked = checked_ggufs(run_dir, parity)
    return bool(checked) and all(p.is_file() for p in checked) and parity.get("inputs") == fingerprint(
        *checked, extra={"tokenizer": parity.get("tokenizer")})


def client_lines(parity: dict[str, Any]) -> list[str]:
    """Which clients were checked on which published file, and how many cases matched."""
    reports = parity.get("clients") or []
    if not reports:
        return []
    lines = ["", "Each file the export made, through the client that loads it (prompts ending with a user turn and "
             "whole conversations: multi-turn, system prompts, indented code, runs of spaces, accents, emoji), "
             "against the training ids:", ""]
    for report in reports:
        mark = "" if report["ok"] else " **MISMATCH**"
        line = f"- `{report['artefact']}` through {report['client']}: {report['matched']}/{report['total']} identical{mark}"
        if report.get("not_checked"):
            reasons = sorted({case["reason"] for case in report["not_checked"]})
            line += f" ({len(report['not_checked'])} not expressible: {'; '.join(reasons)})"
        lines.append(line)
    return lines


def prompt_format_line(tokenizer_spec: str) -> str:
    """How the model is prompted, for the tokenizer family it was trained with."""
    from r1tui.data.render import renders_system_in_place
    from r1tui.data.tokenizer import is_tekken

    if is_tekken(tokenizer_spec) and renders_system_in_place(tokenizer_spec):
        return ("The prompt format is Mistral's V7-Tekken one (Mistral Small 3.x): "
                "`<s>[SYSTEM_PROMPT]system[/SYSTEM_PROMPT][INST]question[/INST]` (no spaces; the chat template "
                "is in the GGUF).")
    if is_tekken(tokenizer_spec):
        return ("The prompt format is Mistral's Tekken one: `<s>[INST]question[/INST]` (no space after "
                "`[INST]`; the chat template is in the GGUF).")
    return "The prompt format is Mistral's v3: `<s>[INST] question[/INST]` (the chat template is in the GGUF)."


def base_licence(config: Config) -> str:
    """model.licence, else the architecture preset's."""
    if config.model.licence:
        return config.model.licence
    from r1tui.calculator import PRESETS

    preset = PRESETS.get(config.model.architecture)
    return preset.licence if preset else ""


def licence_metadata(config: Config) -> dict[str, str]:
    licence = base_licence(config).strip()
    lowered = licence.lower()
    if "mrl" in lowered:
        return {"license": "other", "license_name": "mrl", "license_link": MRL_LINK}
    if lowered in HUB_LICENCE_IDS:
        return {"license": lowered}
    if licence:
        slug = "".join(c if c.isalnum() else "-" for c in lowered).strip("-") or "custom"
        return {"license": "other", "license_name": slug}
    return {"license": "other", "license_name": "same-as-base-model"}


def card_metadata(config: Config) -> dict[str, Any]:
    meta: dict[str, Any] = dict(licence_metadata(config))
    if not config.model.random_init:
        meta["base_model"] = config.model.name  # a Hub id: the Hub links the model tree from it
    meta["tags"] = list(TAGS)
    sources = [section.source for section in (config.data, config.eval)]
    datasets = sorted({s.removeprefix("hf:").split(":")[0] for s in sources if s.startswith("hf:")})
    if datasets:
        meta["datasets"] = datasets
    meta["pipeline_tag"] = "text-generation"
    meta["language"] = ["en"]
    return meta


def _yaml(meta: dict[str, Any]) -> str:
    # JSON scalars and flow lists are valid YAML: no YAML library needed to write it.
    lines = ["---"]
    for key, value in meta.items():
        lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("---")
    return "\n".join(lines)


def _flatten(data: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and depth < 2:
                rows += _flatten(value, name, depth + 1)
            elif isinstance(value, (int, float, str, bool)) or value is None:
                rows.append((name, value))
    return rows


def _public_value(value: Any) -> Any:
    """A local absolute path cut to its last part (a card is published)."""
    if isinstance(value, str) and value.startswith(("/", "~")):
        return ".../" + value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> str:
    out = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    out += [f"| `{name}` | {_value(value)} |" for name, value in rows]
    return "\n".join(out)


def _eval_table(results: dict[str, Any]) -> str:
    """The eval's answers table and comparison (no local paths or settings)."""
    from r1tui.eval.report import markdown_tables

    return markdown_tables(results)


def render_card(config: Config, run_dir: Path | RunLayout, repo_id: str) -> str:
    from r1tui.calculator import count_lora, resolve_architecture

    layout = _layout(run_dir)
    meta = card_metadata(config)
    arch = resolve_architecture(config.model.architecture)
    lora = count_lora(arch, config.lora.r, config.lora.target_modules)
    export = read_json_object(layout.export_manifest)
    stats = read_json(layout.data_stats)
    results = read_json(layout.eval_results)
    parity = read_parity(layout)
    adapter_file = layout.adapter / "adapter_model.safetensors"
    repo_name = repo_id.split("/")[-1] if repo_id else layout.run_id
    licence = meta.get("license_name", meta["license"])

    parts = [_yaml(meta), "", f"# {repo_name}", ""]
    base_text = ("a randomly initialised Mistral-architecture model (the offline test model; "
                 "its outputs are noise)" if config.model.random_init else f"[{config.model.name}](https://huggingface.co/{config.model.name})")
    parts += [
        f"LoRA fine-tune of {base_text} on DeepSeek-R1-style reasoning traces "
        "(question → `<think>` steps `</think>` → `FINAL ANSWER: …`), trained on the responses only "
        "with r1tui, merged, and converted to GGUF with llama.cpp's own converter.",
        "",
        "## Files",
        "",
        "| file | size | tensor types | calculator estimate |",
        "| --- | --- | --- | --- |",
    ]
    published = {p.name for p in published_ggufs(layout, config, parity)}
    for report in (export.get("gguf") or {}).values():
        if Path(report["path"]).name not in published:
            continue
        types = ", ".join(f"{k} ×{v}" for k, v in report.get("type_counts", {}).items())
        parts.append(f"| `{Path(report['path']).name}` | {format_bytes(report['file_bytes'])} | {types} | "
                     f"{format_bytes(report['calculator_bytes'])} of tensors |")
    from r1tui.calculator import mmproj_size_bytes
    from r1tui.export.gguf import mmproj_path

    mmproj = mmproj_path(layout.root, config)
    if mmproj.is_file():  # a Mistral3 base: its vision part, for llama.cpp's multimodal tools
        parts.append(f"| `{mmproj.name}` (vision tower + projector: `llama-mtmd-cli -m MODEL.gguf --mmproj "
                     f"{mmproj.name}`) | {format_bytes(mmproj.stat().st_size)} | F16 / F32 | "
                     f"{format_bytes(mmproj_size_bytes(arch))} of tensors |")
    if adapter_file.is_file():
        parts.append(f"| `adapter/` (peft LoRA) | {format_bytes(adapter_file.stat().st_size)} | | |")
    parts.append(f"| `{layout.modelfile.name}` (Ollama) | | | |")
    parts += ["", "## LoRA", "",
              f"r = {config.lora.r}, alpha = {config.lora.alpha}, dropout = {config.lora.dropout}, on "
              f"{', '.join(config.lora.target_modules)}: **{lora.trainable:,}** trainable parameters, "
              f"{lora.share_of_base * 100:.2f} % of the base's {lora.base_total:,} "
              f"({lora.share_of_all * 100:.2f} % of base + adapter).", ""]
    parts += ["## Masking statistics", ""]
    public_stats = [(name, _public_value(value)) for name, value in _flatten(stats)] if stats else []
    parts += [_table(public_stats, ("statistic", "value")) if stats else "Not recorded for this run.", ""]
    parts += ["## Evaluation", ""]
    parts += [_eval_table(results) if results else "Not evaluated yet (`r1tui eval RUN`).", ""]
    parts += ["## Tokenizer parity", ""]
    if parity:
        status = "identical ids" if parity.get("ok") else "**MISMATCH**"
        parts.append(f"{status}: {len(parity.get('cases', []))} sample conversations, "
                     f"{parity.get('tokens_compared', 0)} tokens, the GGUF through llama.cpp against "
                     "Mistral's own encoding (mistral-common).")
        parts += client_lines(parity)
    else:
        parts.append("Not checked.")
    parts += ["", "## Quantization quality", "", quality_markdown(read_quality(layout))]
    gguf_names = sorted(published)
    example = next((n for n in gguf_names if quant_of(n) != "F16"), gguf_names[0] if gguf_names else "MODEL.gguf")
    quant = quant_of(example) or "Q4_K_M"
    target = repo_id or "USER/REPO"
    parts += [
        "", "## Run it", "",
        prompt_format_line(tokenizer_spec(config)),
        "", "With llama-cpp-python:", "", "```python",
        "from huggingface_hub import hf_hub_download",
        "from llama_cpp import Llama", "",
        f'path = hf_hub_download("{target}", "{example}")',
        f"llm = Llama(model_path=path, n_ctx={config.eval.n_ctx})",
        "# the chat template embedded in the GGUF is the training format",
        'out = llm.create_chat_completion([{"role": "user", "content": "What is 17 * 23?"}], stop=["</s>", "[INST]"])',
        'print(out["choices"][0]["message"]["content"])', "```",
        "", "With Ollama (the Modelfile carries the template and stop tokens):", "", "```bash",
        f"hf download {target} {example} Modelfile --local-dir .",
        "ollama create r1-distill -f Modelfile", "ollama run r1-distill", "```",
        "", f"or directly: `ollama run hf.co/{target}:{quant}`.",
        "", "## Training configuration", "", "```toml", _public_toml(config), "```",
        "", "## Licence", "",
        f"Same licence as the base model: `{licence}`"
        + (f" ([Mistral Research License]({MRL_LINK}): research and non-commercial use)." if meta.get("license_name") == "mrl" else "."),
        "",
    ]
    return "\n".join(parts)


def _public_toml(config: Config) -> str:
    """The frozen config, with local absolute paths cut to their last part."""
    from r1tui.config import dump_toml

    return re.sub(r'"(/[^"]*?)([^/"]+)"', r'".../\2"', dump_toml(config).strip())


def write_card(config: Config, run_dir: Path | RunLayout, repo_id: str = "") -> Path:
    """The run's model card (``RunLayout.card``)."""
    layout = _layout(run_dir)
    return write_text_atomic(layout.card, render_card(config, layout, repo_id))
