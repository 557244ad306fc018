"""Generate the bundled sample dataset: ``src/ehrqa/data/sample/archehr-qa.{xml,_key.json}``.

Every case below was invented by the ehrqa authors. None of it comes from a patient record,
MIMIC or the ArchEHR-QA release. Offsets (phrase ``start_char_index``; sentence
``paragraph_id``/``start_char_index``/``length``) are computed here rather than written by hand.

Each note sentence is ``(label, key, text)``: label ``E``/``S``/``N`` (essential, supplementary,
not-relevant); ``key`` is a short name the answer sentences cite (``None`` when nothing cites it).

    python scripts/make_sample.py            # rewrite the files
    python scripts/make_sample.py --check    # fail if the files on disk differ
"""

# ruff: noqa: E501  (long lines are note sentences and answers: data, kept one per line)

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "src" / "ehrqa" / "data" / "sample"
LABELS = {"E": "essential", "S": "supplementary", "N": "not-relevant"}
MAX_ANSWER_WORDS = 75
MAX_QUESTION_WORDS = 15


def E(key, text):
    return ("E", key, text)


def S(text, key=None):
    return ("S", key, text)


def N(text, key=None):
    return ("N", key, text)


CASES = [
    # ------------------------------------------------------------------ 101
    dict(
        id="101",
        specialty="Cardiology",
        narrative=(
            "My dad went to the ER with chest pressure and they ended up putting a stent in his heart. "
            "Now he takes aspirin and another blood thinner called ticagrelor, and he already hates taking pills. "
            "Why does he have to take two blood thinners after the stent?"
        ),
        phrases=["Why does he have to take two blood thinners after the stent?"],
        clinician_question="Why was dual antiplatelet therapy prescribed after his coronary stent placement?",
        paragraphs=[
            [
                N(
                    "Pt is a 64 yo M with HTN, HLD and tobacco use (40 pack-years) who presented to the ED with 2 hours of substernal chest pressure radiating to the L arm."
                ),
                S("Initial ECG showed 1 mm ST depressions in V4-V6 without ST elevation."),
                E("trop", "Troponin I was 0.42 ng/mL on arrival and peaked at 3.8 ng/mL, consistent with NSTEMI."),
                N("He was given aspirin 325 mg, started on a heparin drip and admitted to the CCU."),
            ],
            [
                E(
                    "cath",
                    "On HD#2 he underwent cardiac catheterization, which showed a 95% stenosis of the proximal LAD.",
                ),
                E(
                    "des",
                    "A drug-eluting stent was placed in the proximal LAD with an excellent angiographic result and TIMI 3 flow.",
                ),
                N("The right radial artery was used for access and the TR band was removed without complication."),
                S("Post-procedure TTE showed LVEF 50% with mild anterior hypokinesis."),
                N("He remained chest pain free for the remainder of the admission."),
                N("Telemetry showed no arrhythmias."),
            ],
            [
                E(
                    "dapt",
                    "Plan for dual antiplatelet therapy with aspirin and ticagrelor for at least 12 months to prevent stent thrombosis.",
                ),
                E(
                    "nostop",
                    "Pt and family were counseled that ticagrelor must not be stopped without discussing with cardiology, as early discontinuation significantly raises the risk of stent thrombosis and MI.",
                ),
                S("Started pantoprazole 40 mg daily for GI prophylaxis while on DAPT."),
                N("Atorvastatin was increased to 80 mg nightly and metoprolol succinate 25 mg daily was started."),
                N("Smoking cessation counseling was provided and pt was given a nicotine patch 21 mg/24 h."),
                S(
                    "Discharge meds:\naspirin 81 mg daily, ticagrelor 90 mg BID, atorvastatin 80 mg qHS, metoprolol succinate 25 mg daily, pantoprazole 40 mg daily."
                ),
                N("Follow up with cardiology in 2 weeks; referral placed to cardiac rehab."),
                N("Return precautions reviewed, including chest pain, shortness of breath and black stools."),
            ],
        ],
        answer=[
            ("Your father had a small heart attack, shown by a rise in his troponin level.", ["trop"]),
            (
                "A heart catheterization found a 95% blockage in a major heart artery, which was opened with a drug-eluting stent.",
                ["cath", "des"],
            ),
            (
                "Aspirin and ticagrelor are taken together for at least 12 months to prevent a clot inside the stent.",
                ["dapt"],
            ),
            (
                "Stopping ticagrelor early raises the risk of stent clotting and another heart attack, so he should not stop it without asking cardiology.",
                ["nostop"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 102
    dict(
        id="102",
        specialty="Pulmonology",
        narrative=(
            "My mom has COPD and got very confused and sleepy at home, so we called 911. "
            "In the hospital they put a tight mask over her face that pushed air in, and she hated it. "
            "Why did she need that mask when she was already on oxygen at home?"
        ),
        phrases=["Why did she need that mask when she was already on oxygen at home?"],
        clinician_question="Why was BiPAP required despite her baseline home oxygen?",
        paragraphs=[
            [
                N(
                    "72 yo F with severe COPD (FEV1 32% predicted) on 2 L home O2, former 2 ppd smoker, quit 5 years ago."
                ),
                S(
                    "Brought in by EMS for 3 days of worsening dyspnea, increased sputum production and progressive somnolence."
                ),
                N("Per daughter, pt had run out of her tiotropium inhaler about a week prior."),
            ],
            [
                E(
                    "abg",
                    "Initial ABG on 4 L NC showed pH 7.24, pCO2 78, pO2 64, consistent with acute on chronic hypercapnic respiratory failure.",
                ),
                E(
                    "ams",
                    "On exam she was somnolent but arousable, oriented only to self, and using accessory muscles with RR 28.",
                ),
                N("CXR showed hyperinflation without focal consolidation or effusion."),
                E("bipap", "She was placed on BiPAP 14/6 with FiO2 35% in the ED."),
                E(
                    "repeat",
                    "Repeat ABG after 2 hours on BiPAP improved to pH 7.33 and pCO2 61, and her mental status improved.",
                ),
                S("Supplemental O2 was titrated to a goal SpO2 of 88-92% to avoid worsening CO2 retention."),
            ],
            [
                N(
                    "Treated with prednisone 40 mg daily x5 days, azithromycin 500 mg then 250 mg daily, and scheduled albuterol/ipratropium nebs."
                ),
                S("Weaned off BiPAP to 2 L NC on HD#3 and tolerated this overnight."),
                N("Seen by PT, who recommended discharge home with home PT."),
                N("Inhaler technique reviewed and tiotropium refilled."),
                N("Outpatient sleep study and pulmonology follow-up arranged to assess the need for nocturnal NIV."),
            ],
        ],
        answer=[
            (
                "Her blood gas showed that carbon dioxide had built up in her blood and made it too acidic, which explains her confusion and sleepiness.",
                ["abg", "ams"],
            ),
            ("Extra oxygen alone does not remove carbon dioxide.", []),
            (
                "The BiPAP mask pushes air in to help her breathe more deeply and blow off the carbon dioxide.",
                ["bipap"],
            ),
            (
                "After two hours on it, her blood acid level and carbon dioxide improved and she became more alert.",
                ["repeat"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 103
    dict(
        id="103",
        specialty="Gastroenterology",
        narrative=(
            "My husband threw up blood and passed out in the kitchen. "
            "They did a scope and said he had an ulcer that was bleeding. "
            "He never had stomach trouble before and only takes ibuprofen for his back. "
            "How did he get an ulcer bad enough to bleed like that?"
        ),
        phrases=["How did he get an ulcer bad enough to bleed like that?"],
        clinician_question="What caused his bleeding duodenal ulcer?",
        paragraphs=[
            [
                N(
                    "58 yo M with chronic low back pain and HTN presenting with hematemesis and a syncopal episode at home."
                ),
                E(
                    "nsaid",
                    "He reports taking ibuprofen 800 mg TID for the past 2 months for back pain, often on an empty stomach.",
                ),
                N("Denies alcohol use, prior GI bleeding or known liver disease."),
                S("In the ED, HR 118, BP 86/50 and Hgb 7.1 g/dL (baseline 13.5)."),
                N(
                    "Two large-bore IVs were placed and he received 2 units pRBC and IV pantoprazole 80 mg bolus followed by infusion."
                ),
            ],
            [
                E("egd", "EGD on HD#1 showed a 1.5 cm duodenal bulb ulcer with a visible vessel."),
                S("The vessel was treated with epinephrine injection and two hemoclips with good hemostasis."),
                E("bx", "Gastric antral biopsies were obtained and returned positive for Helicobacter pylori."),
                N("No varices were seen."),
                N("Post-procedure Hgb stable at 8.4 and 8.6 g/dL over the next 48 hours."),
                N("Diet advanced to regular on HD#3 and tolerated well."),
                N("No further melena or hematemesis."),
            ],
            [
                E(
                    "assess",
                    "Assessment: bleeding duodenal ulcer, most likely due to combined NSAID use and H. pylori infection.",
                ),
                N("Glasgow-Blatchford score on admission 13."),
                E(
                    "stop",
                    "Pt instructed to stop ibuprofen and all NSAIDs permanently; acetaminophen up to 3 g/day allowed for back pain.",
                ),
                E("hp", "Started bismuth quadruple therapy for 14 days for H. pylori eradication."),
                S("Pantoprazole 40 mg BID for 8 weeks, then daily."),
                N("Lisinopril held during admission given hypotension and resumed at discharge."),
                S(
                    "Test of cure for H. pylori (urea breath test) at least 4 weeks after completing antibiotics, off PPI for 2 weeks."
                ),
                N("Referred to PCP and physiatry for alternative back pain management."),
                N("Discharge Hgb 9.0 g/dL."),
                N("Return to ED for black stools, vomiting blood or lightheadedness."),
            ],
        ],
        answer=[
            ("The scope found a bleeding ulcer in the first part of his small intestine.", ["egd"]),
            (
                "His doctors felt it was caused by two things together: regular high-dose ibuprofen, which he took for two months, and an H. pylori stomach infection found on biopsy.",
                ["nsaid", "bx", "assess"],
            ),
            ("Both weaken the gut's protective lining.", []),
            (
                "He should avoid ibuprofen and similar drugs for good and complete the antibiotics for H. pylori.",
                ["stop", "hp"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 104 (two questions)
    dict(
        id="104",
        specialty="Neurology",
        narrative=(
            "My wife woke up unable to get her words out and her right arm was weak. "
            "The doctors said it was a stroke and that they found a problem with her heart rhythm. "
            "What caused her stroke? "
            "She is a retired teacher and talking is everything to her, so will she be able to talk normally again?"
        ),
        phrases=["What caused her stroke?", "will she be able to talk normally again?"],
        clinician_question="What caused her stroke, and what is her expected language recovery?",
        paragraphs=[
            [
                N(
                    "67 yo R-handed F with HTN and T2DM, last known well at 22:00, who woke at 06:00 with expressive aphasia and right arm weakness."
                ),
                N("She was outside the window for thrombolysis, so IV alteplase was not given."),
                S("Initial NIHSS 8 (best language 2, R arm motor 3, facial palsy 1, dysarthria 1, sensory 1)."),
                N("CTA head and neck showed no large vessel occlusion, so she was not a thrombectomy candidate."),
            ],
            [
                E(
                    "mri",
                    "MRI brain showed an acute infarct in the left MCA territory involving the left frontal operculum.",
                ),
                E(
                    "afib",
                    "On telemetry she was noted to have paroxysmal atrial fibrillation with rates 110-130, not previously diagnosed.",
                ),
                S("TTE showed LVEF 60%, moderate left atrial enlargement and no intracardiac thrombus."),
                N("Carotid ultrasound showed <50% stenosis bilaterally."),
                N("LDL 112 mg/dL, HbA1c 7.8%."),
                E("etiology", "Stroke etiology felt to be cardioembolic from newly diagnosed atrial fibrillation."),
                N("Metoprolol tartrate 25 mg BID was started for rate control."),
                S("Apixaban 5 mg BID was started on HD#4 after repeat imaging showed no hemorrhagic transformation."),
                N("Atorvastatin 80 mg daily started."),
            ],
            [
                N(
                    "Failed bedside swallow screen on admission; passed formal SLP swallow evaluation on HD#2 and advanced to a mechanical soft diet."
                ),
                E(
                    "slp",
                    "SLP evaluation showed a nonfluent aphasia with relatively preserved comprehension and impaired naming and repetition.",
                ),
                E(
                    "improve",
                    "By discharge her speech had improved: she was producing short phrases and following 3-step commands, NIHSS 4.",
                ),
                N("Right arm strength improved to 4/5 proximally and 4-/5 distally."),
                E(
                    "prognosis",
                    "Prognosis for further language recovery is felt to be fair to good given early improvement, though the degree of recovery cannot be predicted with certainty.",
                ),
                E(
                    "rehab",
                    "Recommend acute inpatient rehabilitation with daily intensive speech and language therapy.",
                ),
            ],
            [
                N("Discharged to acute rehab on HD#5."),
                N("Long-term BP goal <130/80."),
                N("Neurology stroke clinic follow-up in 4-6 weeks."),
                N("Pt should not drive until cleared by neurology."),
                N("Family educated on stroke warning signs (BE FAST)."),
            ],
        ],
        answer=[
            (
                "Her stroke was caused by a blood clot that most likely formed in her heart because of a new irregular rhythm, atrial fibrillation, and travelled to the left side of her brain.",
                ["mri", "afib", "etiology"],
            ),
            (
                "She has a language disorder called aphasia, and her speech was already improving before discharge.",
                ["slp", "improve"],
            ),
            (
                "Her doctors expect fair to good recovery with intensive speech therapy in rehab, but cannot predict how complete it will be.",
                ["prognosis", "rehab"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 105 (non-ASCII)
    dict(
        id="105",
        specialty="Infectious Disease",
        narrative=(
            "My sister had a high fever and her back hurt so much she couldn't walk. "
            "They found an infection in her blood and now she is going home with an IV line in her arm. "
            "Why does she need IV antibiotics for six weeks instead of pills?"
        ),
        phrases=["Why does she need IV antibiotics for six weeks instead of pills?"],
        clinician_question="Why are six weeks of IV antibiotics needed for her infection?",
        paragraphs=[
            [
                N(
                    "45 yo F with T2DM (HbA1c 9.4%) and a left thigh skin abscess drained at urgent care 3 weeks ago, presenting with fever and severe low back pain."
                ),
                S("Vitals on arrival:\nT 39.2 °C, HR 112, BP 104/62, RR 20, SpO2 97% RA."),
                N("Exam notable for point tenderness over L3-L4 without focal weakness or saddle anesthesia."),
                N("WBC 17.8, CRP 186 mg/L, ESR 92 mm/h."),
            ],
            [
                E("bcx", "Blood cultures grew methicillin-susceptible Staphylococcus aureus (MSSA) in 4 of 4 bottles."),
                E(
                    "mri",
                    "MRI lumbar spine with contrast showed L3-L4 discitis and vertebral osteomyelitis with a small 8 mm epidural phlegmon, no abscess requiring drainage.",
                ),
                N("Neurosurgery was consulted and recommended nonoperative management with serial neuro exams."),
                S(
                    "Initially started on vancomycin (trough 15.2 µg/mL) and cefepime, then narrowed to cefazolin 2 g IV q8h once susceptibilities returned."
                ),
                E("clear", "Repeat blood cultures on HD#3 were negative, and fever resolved by HD#4 (Tmax 37.4 °C)."),
                S("TEE showed no valvular vegetations."),
                N("Thigh wound healing well without residual abscess on ultrasound."),
            ],
            [
                E(
                    "duration",
                    "ID recommends cefazolin 2 g IV q8h for a total of 6 weeks from the first negative blood culture, given vertebral osteomyelitis with S. aureus bacteremia.",
                ),
                E(
                    "iv",
                    "IV therapy was favored over oral agents given high-grade bacteremia and the need for reliable bone penetration and drug levels.",
                ),
                S("PICC placed in the right basilic vein on HD#5; tip confirmed at the cavoatrial junction."),
                N("Weekly CBC with differential, BMP and CRP/ESR to be faxed to ID clinic."),
                N("Insulin glargine increased to 24 units qHS; diabetes education completed."),
                N("Pain controlled on acetaminophen and oxycodone 5 mg q6h PRN."),
                S("ID clinic follow-up in 2 weeks to reassess response; repeat MRI only if symptoms fail to improve."),
                N("Discharged home with home infusion services."),
                N("Instructed to keep PICC dressing dry and to report fever, arm swelling or new leg weakness."),
            ],
        ],
        answer=[
            (
                "Her blood infection was caused by Staphylococcus aureus, which also spread to a disc and the nearby bones of her lower spine.",
                ["bcx", "mri"],
            ),
            (
                "Her fever and blood cultures improved quickly on cefazolin, but infected bone takes much longer to heal.",
                ["clear"],
            ),
            (
                "The infection specialists recommend six weeks of IV cefazolin from the first clear blood culture, since IV treatment reliably reaches the bone at steady levels.",
                ["duration", "iv"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 106 (notes partly silent)
    dict(
        id="106",
        specialty="Orthopedics",
        narrative=(
            "My grandma tripped on a rug and broke her hip, and she had surgery the next day. "
            "Before this she walked to the store by herself every single day. "
            "Will she be able to walk on her own again like before?"
        ),
        phrases=["Will she be able to walk on her own again like before?"],
        clinician_question="What is her expected ambulatory recovery after hip hemiarthroplasty?",
        paragraphs=[
            [
                S(
                    "84 yo F with osteoporosis, CKD stage 3a and HTN, independent in ADLs and ambulating without an assistive device at baseline, presenting after a mechanical fall at home."
                ),
                N("Denies head strike, LOC, chest pain or palpitations prior to the fall."),
                N("XR showed a displaced left femoral neck fracture (Garden IV)."),
            ],
            [
                E(
                    "surg",
                    "Underwent left hip cemented hemiarthroplasty on HD#2 without intraoperative complications; EBL 250 mL.",
                ),
                E(
                    "wbat",
                    "Post-op orders: weight bearing as tolerated on LLE with posterior hip precautions for 6 weeks.",
                ),
                N("Post-op Hgb 8.2 from 10.9, asymptomatic, no transfusion required."),
                N("Enoxaparin 30 mg SC daily (renally dosed) for VTE prophylaxis x4 weeks."),
                S(
                    "Developed mild post-op delirium on POD1, managed with reorientation and sleep hygiene, resolved by POD3."
                ),
                E(
                    "pt",
                    "PT: on POD3 ambulated 40 feet with a rolling walker and min assist; needs mod assist for transfers.",
                ),
                N("Pain controlled with scheduled acetaminophen and oxycodone 2.5 mg q6h PRN."),
                N("Bowel regimen with senna and docusate."),
            ],
            [
                E("snf", "Discharged to a skilled nursing facility for short-term rehab with PT/OT 5x/week."),
                N("Pt s/p L hip hemiarthroplasty; staples to be removed on POD 14 at SNF."),
                S("Orthopedics follow-up in 6 weeks with repeat hip XR."),
                N("Started vitamin D3 2000 IU daily and referred to osteoporosis clinic to discuss zoledronic acid."),
                S("Fall risk is high; home safety evaluation recommended prior to return home."),
            ],
        ],
        answer=[
            (
                "She had a partial hip replacement and is allowed to put as much weight on the leg as she can tolerate, while following hip precautions for six weeks.",
                ["surg", "wbat"],
            ),
            ("Three days after surgery she walked 40 feet with a walker and a little help.", ["pt"]),
            ("She went to a rehab facility for therapy five days a week.", ["snf"]),
            ("The notes do not say whether she is expected to walk on her own as before the fall.", []),
        ],
    ),
    # ------------------------------------------------------------------ 107
    dict(
        id="107",
        specialty="Endocrinology",
        narrative=(
            "My 19 year old son lost a lot of weight and was drinking water all the time, then he started vomiting and breathing really fast. "
            "They kept him in the ICU and now he needs insulin shots every day. "
            "Why does he need insulin for life instead of just taking pills?"
        ),
        phrases=["Why does he need insulin for life instead of just taking pills?"],
        clinician_question="Why does he require lifelong insulin rather than oral diabetes medications?",
        paragraphs=[
            [
                N(
                    "19 yo M with no PMH presenting with 3 weeks of polyuria, polydipsia and 7 kg weight loss, and 1 day of vomiting and abdominal pain."
                ),
                S("On arrival, Kussmaul respirations, HR 124 and dry mucous membranes."),
                E(
                    "dka",
                    "Labs: glucose 542 mg/dL, pH 7.08, bicarbonate 6 mEq/L, anion gap 28 and beta-hydroxybutyrate 7.9 mmol/L, consistent with severe DKA.",
                ),
                N(
                    "Admitted to MICU and started on an insulin infusion and IV fluids per DKA protocol with potassium repletion."
                ),
                N("Anion gap closed after 16 hours and he was transitioned to SC insulin with a 2-hour overlap."),
            ],
            [
                E("ab", "GAD65 antibodies were strongly positive (>250 IU/mL) and IA-2 antibodies were positive."),
                E("cpep", "C-peptide was low at 0.2 ng/mL with a simultaneous glucose of 210 mg/dL."),
                E(
                    "dx",
                    "Findings are consistent with new-onset autoimmune type 1 diabetes with insulin deficiency; oral agents are not appropriate.",
                ),
                S("HbA1c 12.1%."),
                N("TSH normal and tTG-IgA negative."),
            ],
            [
                S(
                    "Discharged on insulin glargine 18 units qHS and insulin lispro with a carb ratio of 1:12 plus correction scale."
                ),
                N(
                    "Diabetes educator completed teaching on injections, glucose monitoring, hypoglycemia treatment and sick-day rules."
                ),
                N("Endocrinology follow-up in 1 week; CGM prescription sent."),
            ],
        ],
        answer=[
            (
                "Your son was very ill from diabetic ketoacidosis, a dangerous acid buildup that happens when the body has almost no insulin.",
                ["dka"],
            ),
            (
                "His blood tests showed antibodies against the insulin-making cells of the pancreas and very low C-peptide, meaning his body makes little insulin of its own.",
                ["ab", "cpep"],
            ),
            ("This is type 1 diabetes, so pills will not work and he needs insulin injections.", ["dx"]),
        ],
    ),
    # ------------------------------------------------------------------ 108
    dict(
        id="108",
        specialty="Nephrology",
        narrative=(
            "My father had a bad stomach bug for a few days and then stopped making much urine. "
            "His kidney numbers were very high and they talked about dialysis but didn't do it. "
            "Does this mean his kidneys are failing for good?"
        ),
        phrases=["Does this mean his kidneys are failing for good?"],
        clinician_question="Is his acute kidney injury expected to be permanent?",
        paragraphs=[
            [
                E(
                    "base",
                    "71 yo M with HTN, T2DM and CKD stage 3a (baseline Cr 1.3 mg/dL) presenting with 4 days of nonbloody diarrhea and vomiting with poor PO intake.",
                ),
                S(
                    "Home meds include lisinopril 40 mg daily, HCTZ 25 mg daily and metformin 1000 mg BID, which he continued taking while ill."
                ),
                N("Orthostatic on exam with dry mucous membranes."),
                E("cr", "Admission Cr 5.8 mg/dL, BUN 96 mg/dL, K 6.1 mEq/L, bicarbonate 14 mEq/L."),
                N(
                    "ECG showed peaked T waves without QRS widening; treated with calcium gluconate, insulin/dextrose and sodium zirconium cyclosilicate."
                ),
            ],
            [
                E(
                    "prerenal",
                    "AKI felt to be prerenal from volume depletion, worsened by ACE inhibitor and diuretic use.",
                ),
                S("Renal ultrasound showed normal-sized kidneys without hydronephrosis."),
                S("Urine sodium <10 mEq/L, FENa 0.4%."),
                N("Lisinopril, HCTZ and metformin were held."),
                E(
                    "nodialysis",
                    "Nephrology consulted on HD#1; no emergent indication for dialysis, as K responded to medical therapy and urine output improved with IV fluids.",
                ),
                N("Received 4 L LR over the first 24 hours."),
                N("Stool C. difficile and GI PCR panel negative; diarrhea resolved by HD#2."),
                E("trend", "Cr trended down to 3.9, 2.4 and then 1.6 mg/dL by HD#4."),
                N("Potassium normalized to 4.4 mEq/L."),
            ],
            [
                E("expect", "Expect further recovery toward baseline; repeat BMP in 1 week to confirm."),
                S(
                    "Lisinopril to be resumed at 10 mg daily only after Cr returns to baseline, per PCP; HCTZ discontinued."
                ),
                N("Metformin held until eGFR confirmed >30."),
                S(
                    "Educated on sick-day rules: hold ACE inhibitor, diuretic and metformin during vomiting or diarrhea."
                ),
                N("Follow up in nephrology clinic in 4 weeks."),
            ],
        ],
        answer=[
            (
                "His kidneys were injured mainly from dehydration due to vomiting and diarrhea, made worse by his blood pressure and water pills.",
                ["prerenal"],
            ),
            (
                "His creatinine rose to 5.8 from a usual 1.3, but dialysis was not needed because his potassium and urine output improved with treatment.",
                ["base", "cr", "nodialysis"],
            ),
            (
                "By the fourth hospital day his creatinine was down to 1.6, and his team expected further recovery toward his baseline.",
                ["trend", "expect"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 109
    dict(
        id="109",
        specialty="Oncology",
        narrative=(
            "My wife is getting chemo for breast cancer and a week after her last treatment she got a fever and chills. "
            "She felt okay otherwise, but the oncologist told us to go straight to the ER and she ended up staying four days. "
            "Why did a fever mean she had to stay in the hospital?"
        ),
        phrases=["Why did a fever mean she had to stay in the hospital?"],
        clinician_question="Why was hospital admission required for fever after chemotherapy?",
        paragraphs=[
            [
                S(
                    "52 yo F with stage IIB ER-/PR-/HER2- left breast cancer on neoadjuvant dose-dense AC (cycle 3), last dose 8 days prior to admission."
                ),
                E("fever", "Presented with Tmax 101.8 F at home and chills; no localizing symptoms."),
                N("Denies cough, dysuria, diarrhea, mouth sores or rash."),
                N("Port site without erythema or tenderness."),
                E("anc", "WBC 0.6 K/uL with ANC 80 cells/uL."),
                N("Hgb 9.8 g/dL, platelets 92 K/uL."),
                N("Lactate 1.4 mmol/L, BP 112/68."),
            ],
            [
                E("fn", "Assessment: febrile neutropenia at the expected nadir following AC chemotherapy."),
                E(
                    "risk",
                    "Given profound neutropenia, infection can progress rapidly with few signs, so she was admitted for empiric IV antibiotics per institutional protocol.",
                ),
                E(
                    "abx",
                    "Blood cultures x2 (peripheral and port) and UA sent, and cefepime 2 g IV q8h started within 1 hour of arrival.",
                ),
                N("CXR clear."),
                N("UA bland; urine culture no growth."),
                S("Blood cultures no growth at 48 hours."),
                N("Remained hemodynamically stable throughout admission."),
                E("recover", "ANC recovered to 1,200 cells/uL on HD#3 and she was afebrile >48 hours."),
                S("Cefepime was discontinued on HD#4."),
            ],
            [
                N("Mild nausea managed with ondansetron 8 mg q8h PRN."),
                N("Seen by oncology nutrition for decreased appetite."),
                N("Emotional support provided; pt tearful about a possible treatment delay."),
                S(
                    "Oncology plans to add pegfilgrastim with subsequent cycles to reduce the risk of recurrent neutropenia."
                ),
                N("Cycle 4 AC to proceed as scheduled if counts are adequate."),
                N("Discharged home with instructions to check temperature twice daily."),
                N("Return immediately for T >100.4 F, rigors or dizziness."),
                N("Oncology clinic follow-up in 5 days."),
                N("Port flushed prior to discharge."),
            ],
        ],
        answer=[
            (
                "About a week after chemotherapy, her infection-fighting white blood cells, called neutrophils, had dropped to a very low level.",
                ["anc", "fn"],
            ),
            (
                "With so few of these cells, an infection can worsen quickly with few warning signs, so her fever was treated as an emergency.",
                ["fever", "risk"],
            ),
            (
                "She was admitted for blood cultures and IV antibiotics, which were stopped once her counts recovered and the fever resolved.",
                ["abx", "recover"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 110 (long, scattered evidence)
    dict(
        id="110",
        specialty="Critical Care",
        narrative=(
            "My mother caught the flu, then pneumonia, and was on a breathing machine in the ICU for more than two weeks. "
            "Now she has a tube in her neck and is going to a long-term hospital. "
            "Why did they have to put a tube in her neck instead of just taking the breathing tube out?"
        ),
        phrases=["Why did they have to put a tube in her neck instead of just taking the breathing tube out?"],
        clinician_question="Why was a tracheostomy performed instead of extubation?",
        paragraphs=[
            [
                N(
                    "69 yo F with obesity (BMI 36), OSA on CPAP and HFpEF presenting with 5 days of fever, myalgias and cough, then 1 day of worsening dyspnea."
                ),
                S("Influenza A PCR positive."),
                N("In the ED, T 102.9 F, HR 121, BP 98/54, RR 34, SpO2 82% on 15 L nonrebreather."),
                N("CXR showed bilateral patchy airspace opacities, worse on the right."),
                E(
                    "intub",
                    "She was intubated in the ED for acute hypoxemic respiratory failure after failing high-flow nasal cannula at 60 L/min and FiO2 100%.",
                ),
                N("Started on oseltamivir 75 mg BID, vancomycin and cefepime."),
                N("Sputum culture grew MSSA; antibiotics narrowed to cefazolin on HD#3."),
            ],
            [
                E("ards", "Initial P/F ratio 88 on PEEP 14, consistent with severe ARDS."),
                S(
                    "Managed with low tidal volume ventilation (6 mL/kg IBW), cisatracurium infusion for 48 hours and prone positioning for 3 sessions."
                ),
                N("Required norepinephrine up to 0.12 mcg/kg/min for septic shock, weaned off by HD#4."),
                N("Developed non-oliguric AKI with peak Cr 2.9 mg/dL, not requiring RRT."),
                N("Cr improved to 1.2 mg/dL with supportive care."),
                N("Sedation with propofol and fentanyl, titrated to RASS -2."),
                S("Oxygenation gradually improved and FiO2 was weaned to 40% on PEEP 8 by HD#7."),
            ],
            [
                E(
                    "sbt1",
                    "First SBT on HD#8 failed after 20 minutes due to tachypnea (RR 38) and a rapid shallow breathing index of 132.",
                ),
                N("Diuresed with a furosemide infusion to net negative 6 L over HD#7-10."),
                E(
                    "sbt2",
                    "Repeat SBTs on HD#10 and HD#12 also failed with tachypnea, hypercapnia (pCO2 62) and accessory muscle use.",
                ),
                E(
                    "weak",
                    "Exam notable for profound generalized weakness, MRC sum score 34/60, consistent with ICU-acquired weakness.",
                ),
                E("cough", "Weak cough with copious secretions requiring suctioning every 1-2 hours."),
                N("Nerve conduction studies were not pursued."),
                N("TTE: LVEF 60%, grade II diastolic dysfunction, no new wall motion abnormality."),
                N("Sedation was minimized with daily awakening trials."),
            ],
            [
                E(
                    "meeting",
                    "On HD#13 a family meeting was held with the patient's son and daughter to discuss prolonged ventilator dependence.",
                ),
                E(
                    "rationale",
                    "Given repeated SBT failures, weakness and poor secretion clearance, the team felt the likelihood of successful extubation in the near term was low and the risk of reintubation high.",
                ),
                E(
                    "benefit",
                    "Tracheostomy was recommended to allow safer, gradual ventilator weaning, reduce sedation needs, improve comfort and facilitate mobilization and secretion clearance.",
                ),
                N("Family agreed with the plan, consistent with the patient's previously stated wishes."),
                E(
                    "trach",
                    "Percutaneous tracheostomy (size 8 Shiley) was performed at the bedside on HD#14 without complication.",
                ),
                N("PEG tube placed by GI on HD#15 for nutrition."),
            ],
            [
                S("Post-tracheostomy, sedation was discontinued and she began trach collar trials of 4-6 hours daily."),
                N("Working with PT/OT; able to sit at the edge of the bed with mod assist by HD#18."),
                S("Speech-language pathology evaluated for a Passy-Muir valve; she tolerated brief trials."),
                N(
                    "Delirium (CAM-ICU positive) on HD#15-17, treated with nonpharmacologic measures and low-dose quetiapine at night."
                ),
                N("Completed 7 days of cefazolin and 5 days of oseltamivir."),
                N("Blood glucose controlled with sliding-scale insulin."),
            ],
            [
                S("Discharged to a long-term acute care hospital for continued ventilator weaning and rehabilitation."),
                N(
                    "Vent settings at transfer: PS 10/PEEP 5, FiO2 30% overnight; trach collar 40% during the day for up to 6 hours."
                ),
                N("Continue enoxaparin 40 mg SC daily for VTE prophylaxis."),
                N("Pulmonology to follow for eventual decannulation."),
            ],
        ],
        answer=[
            (
                "Your mother developed severe lung injury from influenza and pneumonia and needed a breathing tube.",
                ["intub", "ards"],
            ),
            (
                "When the team tried letting her breathe on her own, she failed several times, partly because she was very weak and could not cough up secretions well.",
                ["sbt1", "sbt2", "weak", "cough"],
            ),
            (
                "Because removing the tube soon was unlikely to succeed, the team recommended a tracheostomy after a family meeting, as it allows safer, more comfortable, gradual weaning.",
                ["meeting", "rationale", "benefit", "trach"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 111
    dict(
        id="111",
        specialty="General Surgery",
        narrative=(
            "My 35 year old son had stomach pain for almost a week before he finally went to the hospital. "
            "They said his appendix had burst, but they didn't operate and put a drain in his side instead. "
            "Why didn't they just take his appendix out?"
        ),
        phrases=["Why didn't they just take his appendix out?"],
        clinician_question="Why was his perforated appendicitis managed with a drain instead of appendectomy?",
        paragraphs=[
            [
                S("35 yo M with no PMH presenting with 6 days of RLQ abdominal pain, anorexia and subjective fevers."),
                N("T 100.9 F, HR 104; focal RLQ tenderness without diffuse peritonitis."),
                N("WBC 16.2 with left shift, lactate 1.1."),
                E(
                    "ct",
                    "CT abdomen/pelvis with IV contrast showed perforated appendicitis with a 5.2 x 4.1 cm rim-enhancing pelvic abscess.",
                ),
            ],
            [
                E(
                    "decision",
                    "Given delayed presentation with a well-formed abscess and no generalized peritonitis, nonoperative management was chosen, as early surgery in this setting carries a higher risk of complications including bowel injury, ileocecectomy and wound infection.",
                ),
                E(
                    "drain",
                    "IR placed a 10 Fr percutaneous drain into the abscess on HD#1, with 40 mL of purulent fluid aspirated.",
                ),
                S("Started on piperacillin-tazobactam 4.5 g IV q6h."),
                N("Abscess fluid culture grew E. coli and Bacteroides fragilis, sensitive to pip-tazo."),
                E("improve", "Pain and fever resolved by HD#3, WBC normalized to 8.9 and diet was advanced."),
                N("Drain output decreased from 60 mL to 10 mL/day of serous fluid."),
            ],
            [
                S("Transitioned to amoxicillin-clavulanate 875 mg BID to complete a total of 7 days of antibiotics."),
                N("Discharged home with drain in place; drain teaching provided."),
                N("IR follow-up in 1 week for drain study and likely removal."),
                E(
                    "interval",
                    "Surgery clinic in 6-8 weeks to discuss interval appendectomy versus continued observation.",
                ),
                N("Return for fever, worsening pain or drain dislodgement."),
            ],
        ],
        answer=[
            ("His appendix had burst days earlier and formed a walled-off pocket of infection in his pelvis.", ["ct"]),
            (
                "Operating at that stage carries a higher risk of complications, such as bowel injury or removing more intestine, so the team drained the pocket and gave antibiotics instead.",
                ["decision", "drain"],
            ),
            ("He improved quickly with this approach.", ["improve"]),
            ("The surgeons will discuss removing the appendix later, once the inflammation settles.", ["interval"]),
        ],
    ),
    # ------------------------------------------------------------------ 112
    dict(
        id="112",
        specialty="Obstetrics",
        narrative=(
            "I was 34 weeks pregnant and my blood pressure was very high at a routine checkup, so they induced me and my baby came early. "
            "They also gave me magnesium through an IV that made me feel terrible. "
            "Why did they need to deliver my baby so early?"
        ),
        phrases=["Why did they need to deliver my baby so early?"],
        clinician_question="Why was delivery at 34 weeks indicated?",
        paragraphs=[
            [
                S("29 yo G1P0 at 34w2d by early US presenting from clinic with BP 168/112 and a new headache."),
                N("Pregnancy previously uncomplicated; baseline BP 112/70 in the first trimester."),
                E("bp", "Repeat BPs 164/110 and 170/108, fifteen minutes apart."),
                E(
                    "labs",
                    "Labs: platelets 98 K/uL, AST 142 U/L, ALT 168 U/L, Cr 0.9 mg/dL, urine protein/creatinine ratio 2.1.",
                ),
                N("Denies visual changes, RUQ pain or vaginal bleeding."),
                E(
                    "dx",
                    "Diagnosis: preeclampsia with severe features (severe-range BP, thrombocytopenia and elevated transaminases).",
                ),
            ],
            [
                S("Treated with IV labetalol 20 mg then 40 mg with BP improvement to 148/96."),
                E(
                    "mag",
                    "Magnesium sulfate 4 g IV load then 2 g/h started for seizure prophylaxis and continued for 24 hours postpartum.",
                ),
                E(
                    "deliver",
                    "Delivery recommended at or beyond 34 weeks for preeclampsia with severe features, given the risks of eclampsia, progression to HELLP, placental abruption and stroke with continued pregnancy.",
                ),
                N("NICU was notified and attended the delivery."),
                N("Induction of labor with misoprostol followed by oxytocin."),
                S("Fetal heart tracing category I throughout induction."),
                N("SVD of a liveborn female, 2,210 g, Apgars 7 and 9."),
                N("EBL 450 mL."),
            ],
            [
                N("Infant admitted to NICU for prematurity and mild respiratory distress, on CPAP for 12 hours."),
                S(
                    "Postpartum, platelets nadired at 84 K/uL on PPD1 then recovered to 156 K/uL by PPD3; AST/ALT downtrending."
                ),
                N("Magnesium discontinued 24 hours postpartum without seizure activity."),
                N("Started nifedipine ER 30 mg daily for BPs in the 150s/90s."),
                N("BP 132/84 on the day of discharge."),
                N("Home BP monitoring, with instructions to call for BP >=160/110, headache or visual changes."),
                N(
                    "Postpartum visit in 3-5 days for BP check; counseled on low-dose aspirin in future pregnancies and increased long-term cardiovascular risk."
                ),
            ],
        ],
        answer=[
            (
                "At 34 weeks you developed preeclampsia with severe features, with dangerously high blood pressure, low platelets and signs of liver stress.",
                ["bp", "labs", "dx"],
            ),
            (
                "After 34 weeks, continuing a pregnancy with this condition risks seizures, worsening liver and blood problems, placental separation and stroke, so delivery is recommended.",
                ["deliver"],
            ),
            (
                "The magnesium was given to protect you from seizures during labor and for a day after delivery.",
                ["mag"],
            ),
        ],
    ),
    # ------------------------------------------------------------------ 113
    dict(
        id="113",
        specialty="Hematology",
        narrative=(
            "I noticed tiny red dots all over my legs and my gums were bleeding when I brushed my teeth. "
            "At the ER they said my platelet count was only 4 and I stayed three nights. "
            "What made my platelets drop so low?"
        ),
        phrases=["What made my platelets drop so low?"],
        clinician_question="What caused her severe thrombocytopenia?",
        paragraphs=[
            [
                N(
                    "31 yo F with no significant PMH presenting with 3 days of petechiae on the lower extremities and gum bleeding."
                ),
                E("viral", "Reports an upper respiratory infection about 2 weeks prior, now resolved."),
                S("No new medications, supplements, quinine-containing drinks or recent vaccinations."),
                N("No melena, hematuria or menorrhagia."),
                N(
                    "Exam: scattered petechiae on bilateral shins, wet purpura on the buccal mucosa, no splenomegaly or lymphadenopathy."
                ),
            ],
            [
                E("plt", "Platelets 4 K/uL with normal WBC 6.8 K/uL and Hgb 12.9 g/dL."),
                E(
                    "smear",
                    "Peripheral smear reviewed by hematology: true thrombocytopenia without clumping, occasional large platelets, no schistocytes or blasts.",
                ),
                S("Coags, fibrinogen, LDH, haptoglobin and bilirubin within normal limits."),
                E("workup", "HIV, HCV and H. pylori stool antigen negative; TSH normal; ANA negative."),
                E(
                    "itp",
                    "Assessment: newly diagnosed primary immune thrombocytopenia (ITP), likely triggered by the recent viral illness.",
                ),
                S("Bone marrow biopsy not indicated given the typical presentation."),
            ],
            [
                S(
                    "Given platelets <20 K/uL with mucosal bleeding, treated with dexamethasone 40 mg PO daily x4 days and IVIG 1 g/kg x1.",
                    "tx",
                ),
                S("Platelets rose to 38 K/uL on HD#2 and 112 K/uL on HD#3.", "rise"),
                N("Oral bleeding resolved."),
                N("Counseled to avoid NSAIDs, aspirin and contact sports until the platelet count recovers."),
                N("Tranexamic acid mouthwash PRN for gum bleeding."),
                N(
                    "Hematology follow-up in 1 week with CBC; discussed that relapse can occur and may need further therapy."
                ),
            ],
        ],
        answer=[
            (
                "Your doctors diagnosed immune thrombocytopenia, or ITP, most likely triggered by the cold you had two weeks earlier.",
                ["viral", "itp"],
            ),
            ("In ITP, the immune system mistakenly destroys platelets.", []),
            (
                "Your blood smear confirmed truly low platelets without signs of other blood disorders, and tests for HIV, hepatitis C, H. pylori, thyroid and autoimmune causes were negative.",
                ["plt", "smear", "workup"],
            ),
            ("Your platelet count recovered quickly with steroid and IVIG treatment.", ["tx", "rise"]),
        ],
    ),
    # ------------------------------------------------------------------ 114
    dict(
        id="114",
        specialty="Rheumatology",
        narrative=(
            "My 76 year old mother had a bad headache and pain in her jaw when chewing, and then her vision went blurry in one eye. "
            "They started her on very high dose steroids before any test came back. "
            "Why did they start the steroids so fast?"
        ),
        phrases=["Why did they start the steroids so fast?"],
        clinician_question="Why were high-dose steroids started before temporal artery biopsy results?",
        paragraphs=[
            [
                S(
                    "76 yo F with 2 months of bilateral shoulder and hip girdle stiffness presenting with new left temporal headache, jaw claudication and 1 day of blurred vision in the left eye."
                ),
                S("ESR 98 mm/h, CRP 74 mg/L, platelets 512 K/uL."),
                E(
                    "eye",
                    "Ophthalmology exam showed left pallid optic disc edema consistent with arteritic anterior ischemic optic neuropathy; visual acuity 20/80 OS.",
                ),
                N("Right eye exam normal, acuity 20/25."),
            ],
            [
                E("suspect", "High clinical suspicion for giant cell arteritis with visual involvement."),
                E(
                    "urgent",
                    "IV methylprednisolone 1 g daily x3 days started immediately, without waiting for biopsy, to reduce the risk of permanent vision loss, including in the other eye.",
                ),
                E(
                    "biopsy",
                    "Steroids do not significantly reduce biopsy yield if the biopsy is done within 1-2 weeks.",
                ),
                S(
                    "Left temporal artery biopsy on HD#3 showed granulomatous inflammation with multinucleated giant cells, confirming GCA."
                ),
                N("Transitioned to prednisone 60 mg daily with plan for a slow taper under rheumatology."),
                N("Started calcium, vitamin D, PJP prophylaxis with TMP-SMX DS three times weekly and pantoprazole."),
                N(
                    "Glucose monitored for steroid-induced hyperglycemia; peak 248 mg/dL, managed with sliding-scale insulin."
                ),
                N("Rheumatology to consider tocilizumab as a steroid-sparing agent at follow-up in 1 week."),
            ],
        ],
        answer=[
            (
                "Her symptoms suggested giant cell arteritis, an inflammation of blood vessels that had already reduced blood flow to her left optic nerve.",
                ["eye", "suspect"],
            ),
            (
                "In this situation, delaying treatment can cause permanent blindness, sometimes in both eyes, so high-dose steroids were started right away.",
                ["urgent"],
            ),
            (
                "Starting steroids first does not spoil the artery biopsy result as long as it is done within one to two weeks.",
                ["biopsy"],
            ),
        ],
    ),
]


def build(case: dict) -> tuple[dict, dict]:
    """One case: the XML fields with computed offsets, and its key entry."""
    cid = case["id"]
    narrative = case["narrative"]
    phrases = []
    for k, text in enumerate(case["phrases"]):
        start = narrative.find(text)
        assert start >= 0, f"case {cid}: phrase not in narrative: {text!r}"
        assert narrative.find(text, start + 1) < 0, f"case {cid}: phrase occurs twice: {text!r}"
        phrases.append({"id": str(k), "start": start, "text": text})
    sentences, labels, keys = [], [], {}
    paragraph_texts = []
    sid = 0
    for pid, para in enumerate(case["paragraphs"]):
        offset = 0
        for label, key, text in para:
            assert text == text.strip() and "\n\n" not in text, f"case {cid}: bad sentence text {text!r}"
            sid += 1
            sentences.append(
                {"id": str(sid), "paragraph_id": str(pid), "start": offset, "length": len(text), "text": text}
            )
            labels.append({"sentence_id": str(sid), "relevance": LABELS[label]})
            if key is not None:
                assert key not in keys, f"case {cid}: duplicate key {key}"
                keys[key] = str(sid)
            offset += len(text) + 1
        paragraph_texts.append(" ".join(text for _, _, text in para))
    answer_sentences = [
        {"id": str(k), "text": text, "citations": [keys[c] for c in cites]}
        for k, (text, cites) in enumerate(case["answer"], 1)
    ]
    fields = {
        "id": cid,
        "specialty": case["specialty"],
        "narrative": narrative,
        "phrases": phrases,
        "clinician_question": case["clinician_question"],
        "note_excerpt": "\n\n".join(paragraph_texts),
        "sentences": sentences,
    }
    key_entry = {
        "case_id": cid,
        "answers": labels,
        "clinician_answer_without_citations": " ".join(a["text"] for a in answer_sentences),
        "clinician_answer_sentences": answer_sentences,
    }
    return fields, key_entry


def _leaf(parent: ET.Element, tag: str, text: str, depth: int, attrs: dict | None = None) -> None:
    e = ET.SubElement(parent, tag, attrs or {})
    e.text = f"\n{text}\n" + "    " * depth


def render_xml(all_fields: list[dict]) -> str:
    root = ET.Element("annotations")
    for f in all_fields:
        c = ET.SubElement(root, "case", id=f["id"])
        _leaf(c, "clinical_specialty", f["specialty"], 2)
        _leaf(c, "patient_narrative", f["narrative"], 2)
        q = ET.SubElement(c, "patient_question")
        for p in f["phrases"]:
            _leaf(q, "phrase", p["text"], 3, {"id": p["id"], "start_char_index": str(p["start"])})
        _leaf(c, "clinician_question", f["clinician_question"], 2)
        _leaf(c, "note_excerpt", f["note_excerpt"], 2)
        ss = ET.SubElement(c, "note_excerpt_sentences")
        for s in f["sentences"]:
            attrs = {
                "id": s["id"],
                "paragraph_id": s["paragraph_id"],
                "start_char_index": str(s["start"]),
                "length": str(s["length"]),
            }
            _leaf(ss, "sentence", s["text"], 3, attrs)
    ET.indent(root, space="    ")
    return "<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = ap.parse_args(argv)
    built = [build(c) for c in CASES]
    for fields, key in built:
        words = len(key["clinician_answer_without_citations"].split())
        assert words <= MAX_ANSWER_WORDS, f"case {fields['id']}: answer has {words} words"
        qwords = len(fields["clinician_question"].split())
        assert qwords <= MAX_QUESTION_WORDS, f"case {fields['id']}: clinician question has {qwords} words"
    xml_text = render_xml([f for f, _ in built])
    key_text = json.dumps([k for _, k in built], indent=2, ensure_ascii=False) + "\n"
    targets = {OUT_DIR / "archehr-qa.xml": xml_text, OUT_DIR / "archehr-qa_key.json": key_text}
    if args.check:
        stale = [p.name for p, t in targets.items() if not p.exists() or p.read_text(encoding="utf-8") != t]
        if stale:
            print("out of date: " + ", ".join(stale) + " (run scripts/make_sample.py)", file=sys.stderr)
            return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
