r"""Published concentration-response parameters, carried as cited constants.

The values are transcribed from the published tables (copies of which sit in the shared reference folder as
`gemm_burnett2018.csv` and `ier_central.csv`; the package never reads those files). Cause names are the
package's canonical ones: `"STROKE"` (the GEMM sheet spells it `Stroke`) and `"LRI"` (IER calls it `ALRI`).

**GEMM** - Burnett, R. et al. (2018) "Global estimates of mortality associated with long-term exposure to
outdoor fine particulate matter", *PNAS* 115(38):9592-9597, doi:10.1073/pnas.1803222115; parameters from the
authors' GEMM calculator sheet "GEMM fit parameters". Each entry is `(theta, se_theta, alpha, mu, nu)` for

$$RR(z) = \exp\left(\frac{\theta \log(1 + z/\alpha)}{1 + \exp(-(z - \mu)/\nu)}\right),\quad z = \max(0, C - 2.4).$$

Keys: cohort set (`"inc_China"` = all 41 cohorts including the Chinese male cohort, `"ex_China"` = without it),
cause, age label (`"25+"` = the all-adult fit; 5-year groups `"25-29"` ... `"75-79"`, `"80+"`; the source prints
`30-35` for `30-34`).

**IER** - Burnett, R. T. et al. (2014) "An integrated risk function for estimating the global burden of disease
attributable to ambient fine particulate matter exposure", *Environ. Health Perspect.* 122(4):397-403,
doi:10.1289/ehp.1307049 (central fits as distributed with the TM5-FASST health module), and the GBD 2016
medium parameter set (GBD 2016 Risk Factors Collaborators (2017), *Lancet* 390:1345-1422; TMREL 4.18 ug m-3).
Each entry is `(alpha, gamma, delta, zcf)` for

$$RR(z) = 1 + \alpha\left(1 - e^{-\gamma z^\delta}\right),\quad z = \max(0, C - z_{cf}).$$

Both IER sets are all-age fits.
"""

#: GEMM counterfactual concentration (ug m-3), Burnett et al. (2018).
GEMM_CF = 2.4

#: Age labels of the GEMM table's 5-year groups with the lower bound of each (80+ is open-ended).
GEMM_AGE_LABELS: dict[str, int] = {
    "25-29": 25, "30-34": 30, "35-39": 35, "40-44": 40, "45-49": 45, "50-54": 50, "55-59": 55,
    "60-64": 60, "65-69": 65, "70-74": 70, "75-79": 75, "80+": 80,
}  # fmt: skip

# The GEMM fits keyed once: per cohort set and cause, the shape `(alpha, mu, nu)` (shared by every age) and
# `(theta, se_theta)` for the all-adult fit "25+" and, where the fit is age-specific (NCD+LRI, IHD, STROKE),
# for each 5-year group; a cause with "25+" only has the same theta at every age (COPD, LC, LRI in the sheet).
_GEMM_FITS: dict[str, dict[str, tuple[tuple[float, float, float], dict[str, tuple[float, float]]]]] = {
    "inc_China": {
        "NCD+LRI": ((1.6, 15.5, 36.8), {
            "25+": (0.143, 0.01807), "25-29": (0.1585, 0.01477), "30-34": (0.1577, 0.0147),
            "35-39": (0.157, 0.01463), "40-44": (0.1558, 0.0145), "45-49": (0.1532, 0.01425),
            "50-54": (0.1499, 0.01394), "55-59": (0.1462, 0.01361), "60-64": (0.1421, 0.01325),
            "65-69": (0.1374, 0.01284), "70-74": (0.1319, 0.01234), "75-79": (0.1253, 0.01174),
            "80+": (0.1141, 0.01071),
        }),
        "IHD": ((1.9, 12, 40.2), {
            "25+": (0.2969, 0.01787), "25-29": (0.507, 0.02458), "30-34": (0.4762, 0.02309),
            "35-39": (0.4455, 0.0216), "40-44": (0.4148, 0.02011), "45-49": (0.3841, 0.01862),
            "50-54": (0.3533, 0.01713), "55-59": (0.3226, 0.01564), "60-64": (0.2919, 0.01415),
            "65-69": (0.2612, 0.01266), "70-74": (0.2304, 0.01117), "75-79": (0.1997, 0.00968),
            "80+": (0.1536, 0.00745),
        }),
        "STROKE": ((6.2, 16.7, 23.7), {
            "25+": (0.272, 0.07697), "25-29": (0.4513, 0.11919), "30-34": (0.424, 0.11197),
            "35-39": (0.3966, 0.10475), "40-44": (0.3693, 0.09752), "45-49": (0.3419, 0.0903),
            "50-54": (0.3146, 0.08307), "55-59": (0.2872, 0.07585), "60-64": (0.2598, 0.06863),
            "65-69": (0.2325, 0.0619), "70-74": (0.2051, 0.05418), "75-79": (0.1778, 0.04695),
            "80+": (0.1368, 0.03611),
        }),
        "COPD": ((6.5, 2.5, 32), {"25+": (0.251, 0.06762)}),
        "LC": ((6.2, 9.3, 29.8), {"25+": (0.2942, 0.06147)}),
        "LRI": ((6.4, 5.7, 8.4), {"25+": (0.4468, 0.11735)}),
    },
    "ex_China": {
        "NCD+LRI": ((1.5, 10.4, 25.9), {
            "25+": (0.1231, 0.01797), "25-29": (0.1358, 0.01326), "30-34": (0.1353, 0.01321),
            "35-39": (0.1348, 0.01315), "40-44": (0.1338, 0.01304), "45-49": (0.1317, 0.01283),
            "50-54": (0.1288, 0.01255), "55-59": (0.1256, 0.01225), "60-64": (0.1221, 0.01194),
            "65-69": (0.1181, 0.01157), "70-74": (0.1133, 0.01112), "75-79": (0.1077, 0.01058),
            "80+": (0.0979, 0.00964),
        }),
        "IHD": ((4.9, -21.1, 17.7), {
            "25+": (0.2543, 0.04589), "25-29": (0.3996, 0.03016), "30-34": (0.3796, 0.02834),
            "35-39": (0.3512, 0.02651), "40-44": (0.327, 0.02468), "45-49": (0.3027, 0.02285),
            "50-54": (0.2785, 0.02103), "55-59": (0.2543, 0.0192), "60-64": (0.2301, 0.01737),
            "65-69": (0.2059, 0.01554), "70-74": (0.1816, 0.01371), "75-79": (0.1574, 0.01188),
            "80+": (0.1211, 0.00914),
        }),
        "STROKE": ((6.2, 14.5, 14.4), {
            "25+": (0.1873, 0.08431), "25-29": (0.3177, 0.11625), "30-34": (0.2985, 0.1092),
            "35-39": (0.2792, 0.10216), "40-44": (0.26, 0.09511), "45-49": (0.2407, 0.08807),
            "50-54": (0.2214, 0.08102), "55-59": (0.2011, 0.07398), "60-64": (0.1829, 0.06693),
            "65-69": (0.1637, 0.05988), "70-74": (0.1444, 0.05284), "75-79": (0.1252, 0.0458),
            "80+": (0.0963, 0.03523),
        }),
        "COPD": ((7.2, 2, 14.7), {"25+": (0.2095, 0.06725)}),
        "LC": ((6.7, 11, 16.5), {"25+": (0.2626, 0.07849)}),
        "LRI": ((6.4, 5.7, 8.4), {"25+": (0.4468, 0.11735)}),
    },
}  # fmt: skip


def _expand_gemm(fits) -> dict[str, dict[str, dict[str, tuple[float, float, float, float, float]]]]:
    """Every (cohort set, cause, age label) row `(theta, se_theta, alpha, mu, nu)`, as the GEMM sheet has it."""
    out: dict[str, dict[str, dict[str, tuple[float, float, float, float, float]]]] = {}
    for cohort, causes in fits.items():
        out[cohort] = {}
        for cause, ((alpha, mu, nu), thetas) in causes.items():
            if "25+" not in thetas or set(thetas) - {"25+", *GEMM_AGE_LABELS}:
                raise ValueError(f"GEMM table {cohort}/{cause}: age labels {sorted(thetas)} (need 25+)")
            out[cohort][cause] = {
                age: (*thetas.get(age, thetas["25+"]), alpha, mu, nu) for age in ("25+", *GEMM_AGE_LABELS)
            }
    return out


#: GEMM fit parameters `(theta, se_theta, alpha, mu, nu)` by cohort set, cause and age label
#: (Burnett et al. 2018, PNAS 115:9592, GEMM calculator sheet "GEMM fit parameters"), expanded from the
#: table above: every cause has the labels "25+" and the twelve 5-year groups of `GEMM_AGE_LABELS`.
GEMM_BURNETT2018: dict[str, dict[str, dict[str, tuple[float, float, float, float, float]]]] = _expand_gemm(
    _GEMM_FITS
)

#: IER central parameters `(alpha, gamma, delta, zcf)` by source and cause (all ages): `"burnett2014"`
#: (Burnett et al. 2014, EHP 122:397, TM5-FASST distribution) and `"gbd2016"` (GBD 2016 medium set).
IER_CENTRAL: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "burnett2014": {
        "LRI": (1.97378648, 0.002847675, 1.209294599, 5.553867502),
        "COPD": (14.10220781, 0.001206578, 0.680348423, 5.787549667),
        "IHD": (1.190330928, 0.0750978, 0.374809182, 5.89785796),
        "LC": (15.67636977, 0.001073919, 0.765861621, 5.312838615),
        "STROKE": (1.16632796, 0.011865371, 1.202946339, 7.261807718),
    },
    "gbd2016": {
        "LC": (71.5, 0.000213, 0.773, 4.18),
        "IHD": (6.16, 0.0131, 0.332, 4.18),
        "STROKE": (2.72, 0.0141, 0.429, 4.18),
        "COPD": (15.4, 0.00228, 0.579, 4.18),
    },
}
