"""mkdocs hooks: generated zoo table, benchmark page list, optional pages in the nav.

- `<!-- bnnzoo:zoo-table -->` in a page becomes `bnnzoo.zoo.zoo_table_markdown()`
  (every registered family and every pretrained card) at build time, so the zoo page
  can never be out of date.
- `<!-- bnnzoo:registry -->` becomes the lists of registered quantizers and optimizers.
- `<!-- bnnzoo:benchmark-pages -->` becomes links to every `docs/benchmarks/*.md`.
- Pages that other parts of the project write (`tuning.md`, `learned_gradients.md`,
  `benchmarks/*.md`) are added to the navigation when, and only when, they exist,
  because `mkdocs build --strict` fails on nav entries without a file.
"""

from __future__ import annotations

from pathlib import Path

OPTIONAL_PAGES = [("Tuning", "tuning.md"), ("Learned gradients", "learned_gradients.md")]
BENCHMARK_TITLES = {
    "quantizers": "Quantizers",
    "optimizers": "Optimizers",
    "learned_gradients": "Learned gradients",
    "tuning": "Tuning",
    "zoo_pareto": "Zoo: accuracy against size",
}


def benchmark_pages(docs_dir: Path) -> list[tuple[str, str]]:
    """(title, path relative to docs/) of every page under docs/benchmarks/."""
    pages = []
    for path in sorted((docs_dir / "benchmarks").glob("*.md")):
        title = BENCHMARK_TITLES.get(path.stem, path.stem.replace("_", " ").capitalize())
        pages.append((title, f"benchmarks/{path.name}"))
    return pages


def extend_nav(nav: list, docs_dir: Path) -> list:
    """`nav` plus the optional pages and benchmark pages that exist in `docs_dir`."""
    nav = [dict(item) if isinstance(item, dict) else item for item in nav]
    listed = {v for item in nav if isinstance(item, dict) for v in item.values() if isinstance(v, str)}
    position = next((i for i, item in enumerate(nav) if isinstance(item, dict) and "Benchmarks" in item), len(nav))
    for title, page in OPTIONAL_PAGES:
        if (docs_dir / page).is_file() and page not in listed:
            nav.insert(position, {title: page})
            position += 1
    for item in nav:
        if isinstance(item, dict) and "Benchmarks" in item:
            section = list(item["Benchmarks"])
            present = {v for entry in section for v in entry.values()}
            section += [{t: p} for t, p in benchmark_pages(docs_dir) if p not in present]
            item["Benchmarks"] = section
    return nav


def registry_markdown() -> str:
    import bnnzoo

    quantizers = ", ".join(f"`{q}`" for q in bnnzoo.quantizers.list_quantizers())
    optimizers = ", ".join(f"`{o}`" for o in bnnzoo.optimizers.list_optimizers())
    return f"- **Quantizers**: {quantizers}\n- **Optimizers**: {optimizers}\n"


def zoo_markdown() -> str:
    from bnnzoo import zoo
    from bnnzoo.models import get_model_spec, list_models

    families = ["| family | default input | minimum input | description |", "| --- | --- | --- | --- |"]
    for name in list_models():
        spec = get_model_spec(name)
        shape = "x".join(map(str, spec.default_input_shape))
        families.append(f"| `{name}` | {shape} | {spec.min_input_size} px | {spec.description} |")
    return ("### Families\n\n" + "\n".join(families) + "\n\n### Pretrained weights\n\n"
            + zoo.zoo_table_markdown())


def expand(markdown: str, docs_dir: Path) -> str:
    """Replace the bnnzoo placeholders in one page's Markdown."""
    if "<!-- bnnzoo:zoo-table -->" in markdown:
        markdown = markdown.replace("<!-- bnnzoo:zoo-table -->", zoo_markdown())
    if "<!-- bnnzoo:registry -->" in markdown:
        markdown = markdown.replace("<!-- bnnzoo:registry -->", registry_markdown())
    if "<!-- bnnzoo:benchmark-pages -->" in markdown:
        links = [f"- [{t}]({p})" for t, p in benchmark_pages(docs_dir)]
        markdown = markdown.replace(
            "<!-- bnnzoo:benchmark-pages -->", "\n".join(links) or "(none written yet)")
    return markdown


def on_config(config, **kwargs):
    config["nav"] = extend_nav(config["nav"], Path(config["docs_dir"]))
    return config


def on_page_markdown(markdown, page, config, files, **kwargs):
    return expand(markdown, Path(config["docs_dir"]))
