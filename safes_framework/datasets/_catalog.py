"""The bundled datasets' public schemas, sources and terms (no rows are read here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..schema import Categorical, Integer, Schema


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset is, where it comes from and on which terms.

    Attributes:
        name: the name passed to `load`.
        filename: the file under `safes_framework/datasets/data/`.
        rows: the number of rows of the shipped table.
        title: a one-line description.
        source: where the raw data come from and how they were derived.
        terms: the licence or terms of use of the upstream data, and what to cite.
    """

    name: str
    filename: str
    rows: int
    title: str
    source: str
    terms: str


def _binary(name: str) -> Categorical:
    return Categorical(name, (0, 1))


def adult_schema() -> Schema:
    """Schema of `adult`: the SAFES paper's five-column Adult table (UCI Adult, Kohavi 1996).

    Source: UCI Machine Learning Repository, "Adult" (Census Income), Becker and Kohavi 1996,
    doi:10.24432/C5XW20; `adult.data` (32,561 rows) followed by `adult.test` (16,281 rows),
    48,842 rows, no row dropped. Codes (the values in the table):

    - `age-decade` = ((age - 17) // 10) * 10, one of 0, 10, ..., 70 (ages 17-26 are 0, 87-90
      are 70); a Categorical, so its codes are value / 10.
    - `education-reduced` = clip(education-num, 6, 14) - 6, 0..8.
    - `race`: 1 = White, 0 = any other race. Protected; privileged 1.
    - `sex`: 1 = Male, 0 = Female. Protected; privileged 1.
    - `income>50K`: 1 = income >50K (favourable), 0 = <=50K. The label.

    Terms: UCI lists Adult under CC BY 4.0; cite UCI and Kohavi (1996).
    """
    return Schema(
        columns=(
            Categorical("age-decade", tuple(range(0, 80, 10))),
            Integer("education-reduced", 0, 8),
            _binary("race"),
            _binary("sex"),
            _binary("income>50K"),
        ),
        protected=("race", "sex"),
        label="income>50K",
        favorable=1,
        privileged={"race": (1,), "sex": (1,)},
    )


def compas_schema() -> Schema:
    """Schema of `compas`: ProPublica's two-year COMPAS file as preprocessed in the SAFES paper.

    Source: ProPublica, compas-analysis, `compas-scores-two-years.csv` (7,214 rows), with
    ProPublica's filters (-30 <= days_b_screening_arrest <= 30, is_recid != -1,
    c_charge_degree != 'O', score_text != 'N/A') and only African-American and Caucasian
    defendants: 5,278 rows. Only the six derived columns below are shipped; names, dates of
    birth, case numbers and ids are not. Codes:

    - `sex`: 1 = Female, 0 = Male. Protected; privileged 1 (Female), the convention of
      AIF360's `CompasDataset` and of the SAFES paper's code.
    - `race`: 1 = Caucasian, 0 = African-American. Protected; privileged 1.
    - `age_cat`: 0 = less than 25, 1 = 25-45, 2 = greater than 45.
    - `c_charge_degree`: 1 = felony (F), 0 = misdemeanour (M).
    - `priors_count`: 0 = no prior, 1 = 1 to 3, 2 = more than 3.
    - `two_year_recid`: 1 = re-offended within two years, 0 = did not. The label; favourable 0.

    Terms: the ProPublica repository states no licence. Cite Angwin, Larson, Mattu and
    Kirchner, "Machine Bias", ProPublica, 23 May 2016, and the compas-analysis repository.
    """
    return Schema(
        columns=(
            _binary("sex"),
            _binary("race"),
            Categorical("age_cat", (0, 1, 2)),
            _binary("c_charge_degree"),
            Categorical("priors_count", (0, 1, 2)),
            _binary("two_year_recid"),
        ),
        protected=("race", "sex"),
        label="two_year_recid",
        favorable=0,
        privileged={"race": (1,), "sex": (1,)},
    )


#: Domain sizes of private-pgm's `adult-domain.json`, in its column order.
ADULT_FULL_DOMAIN: dict[str, int] = {
    "age": 85,
    "workclass": 9,
    "fnlwgt": 100,
    "education-num": 16,
    "marital-status": 7,
    "occupation": 15,
    "relationship": 6,
    "race": 5,
    "sex": 2,
    "capital-gain": 100,
    "capital-loss": 100,
    "hours-per-week": 99,
    "native-country": 42,
    "income>50K": 2,
}

#: Ordered (integer or binned) columns of `adult-full`; the others are nominal.
_ADULT_FULL_ORDERED = frozenset(
    {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
)


def adult_full_schema() -> Schema:
    """Schema of `adult-full`: private-pgm's discretised Adult, 14 columns of integer codes.

    Source: `data/adult.csv` and `data/adult-domain.json` of ryan112358/private-pgm (the
    default input of its AIM and MST examples), derived from UCI Adult: 48,842 rows in UCI
    order (`adult.data`, then `adult.test`), missing values kept as their own code. Every
    column holds codes 0..size-1 with the sizes of `adult-domain.json`; ordered columns are
    `Integer`, nominal ones `Categorical` of range(size). Codes checked against the raw UCI
    files: age = code + 16; education-num = code + 1; hours-per-week = code + 1;
    capital-gain = code * 1000 (floor); fnlwgt and capital-loss are opaque ordered bins;
    `race`: 0 = White, 1 = Asian-Pac-Islander, 2 = Amer-Indian-Eskimo, 3 = Other, 4 = Black
    (protected, privileged 0); `sex`: 0 = Female, 1 = Male (protected, privileged 1);
    `income>50K`: 1 = >50K (the label, favourable 1).

    Terms: private-pgm is Apache-2.0 (no separate data licence); the upstream data are UCI
    Adult (CC BY 4.0 per UCI); cite UCI, Kohavi (1996) and private-pgm (McKenna et al.).
    """
    columns = tuple(
        Integer(name, 0, size - 1)
        if name in _ADULT_FULL_ORDERED
        else Categorical(name, tuple(range(size)))
        for name, size in ADULT_FULL_DOMAIN.items()
    )
    return Schema(
        columns=columns,
        protected=("race", "sex"),
        label="income>50K",
        favorable=1,
        privileged={"race": (0,), "sex": (1,)},
    )


_UCI_TERMS = (
    "UCI Adult (Becker and Kohavi, 1996, doi:10.24432/C5XW20); UCI lists it under CC BY 4.0. "
    "Cite the UCI repository and Kohavi (1996)."
)

CATALOG: dict[str, tuple[DatasetInfo, Callable[[], Schema]]] = {
    "adult": (
        DatasetInfo(
            name="adult",
            filename="adult.csv.gz",
            rows=48_842,
            title="UCI Adult, SAFES paper preprocessing (5 columns: age-decade, "
            "education-reduced, race, sex, income>50K)",
            source="UCI Adult: adult.data followed by adult.test (48,842 rows), recoded as in "
            "the SAFES paper; built by scripts/build_datasets.py",
            terms=_UCI_TERMS,
        ),
        adult_schema,
    ),
    "compas": (
        DatasetInfo(
            name="compas",
            filename="compas.csv.gz",
            rows=5_278,
            title="ProPublica COMPAS two-year recidivism, SAFES/AIF360 preprocessing (6 columns)",
            source="propublica/compas-analysis compas-scores-two-years.csv with ProPublica's "
            "filters, African-American and Caucasian defendants only; derived columns only, "
            "no personal data; built by scripts/build_datasets.py",
            terms="No licence stated by ProPublica. Cite Angwin, Larson, Mattu and Kirchner, "
            '"Machine Bias", ProPublica, 23 May 2016, and propublica/compas-analysis.',
        ),
        compas_schema,
    ),
    "adult-full": (
        DatasetInfo(
            name="adult-full",
            filename="adult-full.csv.gz",
            rows=48_842,
            title="UCI Adult discretised by private-pgm (14 columns of integer codes)",
            source="ryan112358/private-pgm data/adult.csv with the domain of "
            "data/adult-domain.json, unchanged; built by scripts/build_datasets.py",
            terms="private-pgm is Apache-2.0 (no separate data licence). " + _UCI_TERMS,
        ),
        adult_full_schema,
    ),
}
