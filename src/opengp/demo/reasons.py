"""Why people consult their GP practice: the reasons for acute consultations, by age and
sex, and what each tends to lead to (measurements, bloods, a referral, a short course).

Weights are relative frequencies among acute consultations, roughly as in English general
practice; reasons that `require` a condition are open only to patients who have it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    text: str
    weight: float
    ages: tuple[int, int] = (0, 120)
    sex: str | None = None
    requires: str | None = None  # a condition the patient must have (and is linked)
    measure: tuple[str, ...] = ()
    staff: str = "gp"  # gp | nurse | pharmacist
    referral: str | None = None
    referral_chance: float = 0.0
    paracetamol: float = 0.0  # chance of an acute course
    note: str = "Advice given; safety-netted."
    bloods: tuple[str, ...] = ()  # tests requested, taken a few days later
    bloods_chance: float = 0.0


REASONS: tuple[Reason, ...] = (
    Reason("Cough and cold symptoms", 10, note="Viral illness; self-care advice given."),
    Reason("Fever", 5, (0, 15), note="Well child, no red flags; fluids and antipyretics."),
    Reason("Earache", 4, (0, 15), paracetamol=0.2),
    Reason("Sore throat", 5, (3, 60), note="FeverPAIN 1; no antibiotic needed."),
    Reason("Diarrhoea and vomiting", 3, note="Hydration advice; return if not improving."),
    Reason("Eczema flare", 3, (0, 30), referral="referral_dermatology", referral_chance=0.05),
    Reason("Skin rash", 4, referral="referral_dermatology", referral_chance=0.08),
    Reason("Changing mole", 1.5, (18, 120), referral="referral_dermatology", referral_chance=0.4),
    Reason(
        "Back pain",
        6,
        (18, 120),
        referral="referral_physiotherapy",
        referral_chance=0.15,
        paracetamol=0.4,
        note="Mechanical back pain, no red flags; keep active.",
    ),
    Reason(
        "Knee pain",
        4,
        (18, 120),
        referral="referral_physiotherapy",
        referral_chance=0.2,
        paracetamol=0.35,
    ),
    Reason(
        "Shoulder pain",
        3,
        (30, 120),
        referral="referral_physiotherapy",
        referral_chance=0.2,
        paracetamol=0.3,
    ),
    Reason("Headache", 3, (12, 120), measure=("bp",), paracetamol=0.3),
    Reason(
        "Low mood",
        4,
        (16, 120),
        referral="referral_mental_health",
        referral_chance=0.1,
        note="PHQ-9 completed; talking therapies information given.",
    ),
    Reason(
        "Anxiety and stress", 3, (16, 120), referral="referral_mental_health", referral_chance=0.08
    ),
    Reason("Abdominal pain", 3, (5, 120)),
    Reason(
        "Urinary symptoms",
        4,
        (16, 120),
        note="Urine dip done; advice given.",
        bloods=("egfr", "serum_creatinine"),
        bloods_chance=0.2,
    ),
    Reason(
        "Tiredness",
        3,
        (16, 120),
        measure=("bp", "weight"),
        bloods=("hba1c", "egfr", "serum_creatinine"),
        bloods_chance=0.6,
    ),
    Reason(
        "Chest pain",
        1.5,
        (30, 120),
        measure=("bp",),
        referral="referral_cardiology",
        referral_chance=0.2,
        note="ECG normal; musculoskeletal features.",
        bloods=("total_cholesterol", "hba1c"),
        bloods_chance=0.3,
    ),
    Reason(
        "Palpitations",
        1,
        (20, 120),
        measure=("bp",),
        referral="referral_cardiology",
        referral_chance=0.25,
    ),
    Reason("Breathlessness", 1.5, (40, 120), referral="referral_respiratory", referral_chance=0.1),
    Reason(
        "Dizziness",
        1.5,
        (40, 120),
        measure=("bp",),
        bloods=("egfr", "serum_creatinine"),
        bloods_chance=0.4,
    ),
    Reason("Medication query", 3, (40, 120), staff="pharmacist", note="Medication reviewed."),
    Reason("Fit note request", 2, (18, 65)),
    Reason("Insomnia", 1.5, (18, 120), note="Sleep hygiene advice given."),
    Reason("Contraception review", 3, (16, 50), "female", measure=("bp", "weight"), staff="nurse"),
    Reason("Menopause symptoms", 2, (45, 58), "female", measure=("bp",)),
    Reason("Prostate symptoms", 1.5, (50, 120), "male", note="PSA discussed; urine dip clear."),
    Reason(
        "Fall at home",
        2,
        (75, 120),
        measure=("bp",),
        paracetamol=0.3,
        bloods=("egfr", "serum_creatinine"),
        bloods_chance=0.5,
    ),
    Reason(
        "Worsening wheeze",
        6,
        requires="asthma",
        measure=("peak_flow",),
        referral="referral_respiratory",
        referral_chance=0.04,
        note="Asthma exacerbation; inhaler technique and action plan reviewed.",
    ),
    Reason(
        "Increased breathlessness",
        6,
        requires="copd",
        measure=("peak_flow",),
        note="COPD exacerbation; rescue pack advice.",
    ),
    Reason("Depression follow-up", 6, requires="depression", note="Mood improving; continue plan."),
    Reason("Blood pressure check", 5, requires="hypertension", measure=("bp",), staff="nurse"),
    Reason("Diabetes medication query", 3, requires="type2_diabetes", staff="pharmacist"),
    Reason(
        "Ankle swelling",
        4,
        requires="heart_failure",
        measure=("weight", "bp"),
        bloods=("egfr", "serum_creatinine"),
        bloods_chance=0.5,
    ),
    Reason("Memory follow-up", 4, requires="dementia", note="Carer support discussed."),
    Reason("Joint pain flare", 4, requires="osteoarthritis", paracetamol=0.5),
)
