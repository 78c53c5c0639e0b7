"""Stage and subject vocabulary: the labels the provincial exports write, and the codes used in code.

This is the national K-12 list that sd-2022 spells out (43 subject areas); a rule file may narrow or
extend it under `vocabulary:`.
"""

from __future__ import annotations

STAGES: dict[str, str] = {
    "高中": "high", "普通高中": "high", "high": "high",
    "初中": "middle", "middle": "middle",
    "小学": "primary", "primary": "primary",
    "幼儿园": "kindergarten", "学前": "kindergarten", "kindergarten": "kindergarten",
}

_COMMON = {"语文": "chinese", "数学": "maths", "英语": "english", "音乐": "music", "美术": "art",
           "信息技术": "it", "综合实践活动": "integrated-practice", "心理健康教育": "mental-health"}

SUBJECTS: dict[str, dict[str, str]] = {
    "high": _COMMON | {"物理": "physics", "化学": "chemistry", "生物": "biology", "思想政治": "politics",
                       "政治": "politics", "历史": "history", "地理": "geography", "体育与健康": "pe-health",
                       "通用技术": "general-technology"},
    "middle": _COMMON | {"物理": "physics", "化学": "chemistry", "生物": "biology", "道德与法治": "morality-law",
                         "历史": "history", "地理": "geography", "体育": "pe"},
    "primary": _COMMON | {"科学": "science", "体育": "pe", "道德与法治": "morality-law"},
    "kindergarten": {},
}


# Labels of the 2022 compulsory-education curriculum and short forms the exports also write; each maps onto
# an existing code, so nothing downstream changes.
_ALIASES: dict[str, dict[str, str]] = {
    "high": {"生物学": "biology", "心理健康": "mental-health", "综合实践": "integrated-practice"},
    "middle": {"体育与健康": "pe", "信息科技": "it", "生物学": "biology", "思想品德": "morality-law",
               "心理健康": "mental-health", "综合实践": "integrated-practice"},
    "primary": {"体育与健康": "pe", "信息科技": "it", "品德与生活": "morality-law", "品德与社会": "morality-law",
                "心理健康": "mental-health", "综合实践": "integrated-practice"},
}
for _stage, _labels in _ALIASES.items():
    SUBJECTS[_stage].update(_labels)

def stage_code(label: str) -> str | None:
    return STAGES.get(label.strip())


def subject_code(stage: str, label: str, subjects: dict[str, dict[str, str]] | None = None) -> str | None:
    """The subject's code if it exists for that stage (labels in Chinese or the code itself)."""
    table = (subjects or SUBJECTS).get(stage, {})
    label = label.strip()
    if label in table:
        return table[label]
    return label if label in table.values() else None
