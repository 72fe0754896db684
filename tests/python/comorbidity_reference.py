"""Reference scores from comorbidipy (MIT) for the risk tests.

Reads a CSV of `id,code` (ICD-10 codes upper case without dots, as comorbidipy expects)
and writes `id,charlson_quan,charlson_aids,elixhauser_vw,hfrs,hfrs_code3` for every id, with comorbidipy 0.8's
Quan (2005) ICD-10 mappings, its Quan (2011) and van Walraven weights, and its HFRS table.
Usage: comorbidity_reference.py IN.csv OUT.csv
"""
import sys

import polars as pl
from comorbidipy import comorbidity, hfrs

codes = pl.read_csv(sys.argv[1], schema={"id": pl.Utf8, "code": pl.Utf8})
ids = codes.select("id").unique()
ch = comorbidity(codes, id_col="id", code_col="code", score="charlson", icd="icd10",
                 variant="quan", weighting="quan", assign0=True)
el = comorbidity(codes, id_col="id", code_col="code", score="elixhauser", icd="icd10",
                 variant="quan", weighting="van_walraven", assign0=True)
hf = hfrs(codes, id_col="id", code_col="code")
# Gilbert et al. count each three-character code once per person; comorbidipy 0.8 counts
# each distinct full code (I10 and I101 twice). The same weights over codes cut to three
# characters give the paper's score.
code3 = codes.with_columns(pl.col("code").str.slice(0, 3)).unique()
hf3 = hfrs(code3, id_col="id", code_col="code")
aids = ch.select(["id", "aids"]) if "aids" in ch.columns else ids.with_columns(pl.lit(0).alias("aids"))
out = (
    ids.join(ch.select(["id", pl.col("comorbidity_score").alias("charlson_quan")]), on="id", how="left")
    .join(aids.rename({"aids": "charlson_aids"}), on="id", how="left")
    .join(el.select(["id", pl.col("comorbidity_score").alias("elixhauser_vw")]), on="id", how="left")
    .join(hf.select(["id", pl.col("hfrs_score").alias("hfrs")]), on="id", how="left")
    .join(hf3.select(["id", pl.col("hfrs_score").alias("hfrs_code3")]), on="id", how="left")
    .fill_null(0)
    .sort("id")
)
out.write_csv(sys.argv[2])
