"""The practice itself: its Organization, sites, services and staff, shaped for UK Core R4.

Everything is fictional and deterministic for a seed:
- the ODS code is "Y" and five digits drawn from the seed (ODS has no reserved test range;
  this is a made-up code that no directory lookup should rely on);
- telephone numbers are from Ofcom's range for drama, 01632 960000-960999;
- addresses name invented streets and towns and carry no postcode, so none points at a real
  place;
- staff numbers sit under a system that is plainly not a registry
  (https://opengp.example/Id/staff-number), so nothing resembles a GMC or NMC number.

Staff scale with the list, per 10,000 patients roughly 3 GP partners, 3 salaried GPs, 3
practice nurses, 2 healthcare assistants, 1 clinical pharmacist, 6 receptionists and 1
practice manager, and at least one of each. Each person is a Practitioner with one
PractitionerRole whose `code` holds the national RBAC access role (SDS job role name code
system, the role a smartcard carries) with the local job title as its text:

- GP partners and salaried GPs: R8000 Clinical Practitioner Access Role;
- practice nurses: R8001 Nurse Access Role;
- clinical pharmacist: R8003 Health Professional Access Role (a registered health
  professional who is neither doctor nor nurse);
- healthcare assistants: R8008 Admin/Clinical Support Access Role: they are clinical
  support workers, not registered professionals, which R8003 is meant for;
- receptionists: R8009 Receptionist Access Role;
- practice manager: R8008 Admin/Clinical Support Access Role: the work is practice
  administration (registrations, letters, reports); R8015 Systems Support is for those who
  administer the IT system, which a manager may hold in addition but is not the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from opengp.demo.model import ODS_SYSTEM, DemoConfig, Practice, Site, StaffMember, demo_id, stream
from opengp.demo.people import TOWN as PATIENTS_TOWN
from opengp.terminology import concept

STAFF_NUMBER_SYSTEM = "https://opengp.example/Id/staff-number"
MAIN_LOCATION_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MainLocation"
PRACTICE_SETTING_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-PracticeSettingCode"
SERVICE_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/service-category"
SERVICE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/service-type"
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
PHYSICAL_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def profile(resource_type: str) -> dict[str, list[str]]:
    """meta claiming the UK Core profile of a resource type."""
    return {"profile": [f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{resource_type}"]}


def general_practice_category() -> dict[str, Any]:
    """service-category 17 General Practice, as GP Connect puts on its Schedules."""
    coding = {"system": SERVICE_CATEGORY_SYSTEM, "code": "17", "display": "General Practice"}
    return {"coding": [coding], "text": "General Practice"}


@dataclass(frozen=True, slots=True)
class StaffKind:
    kind: str
    per_10k: int
    title: str  # local job title: PractitionerRole.code.text
    sds_role: str  # national RBAC access role code
    clinical: bool
    doctor: bool
    specialty: tuple[str, str] | None  # UK Core practice setting (code, display)
    service: str | None  # key of the HealthcareService the role delivers


STAFF_KINDS = (
    StaffKind(
        "gp-partner",
        3,
        "GP partner",
        "R8000",
        True,
        True,
        ("600", "General Medical Practice"),
        "gp",
    ),
    StaffKind(
        "salaried-gp",
        3,
        "Salaried GP",
        "R8000",
        True,
        True,
        ("600", "General Medical Practice"),
        "gp",
    ),
    StaffKind("nurse", 3, "Practice nurse", "R8001", True, False, ("950", "Nursing"), "nurse"),
    StaffKind("hca", 2, "Healthcare assistant", "R8008", True, False, None, "hca"),
    StaffKind("pharmacist", 1, "Clinical pharmacist", "R8003", True, False, None, "pharmacist"),
    StaffKind("receptionist", 6, "Receptionist", "R8009", False, False, None, None),
    StaffKind("practice-manager", 1, "Practice manager", "R8008", False, False, None, None),
)
KINDS = {k.kind: k for k in STAFF_KINDS}


@dataclass(frozen=True, slots=True)
class Service:
    key: str
    name: str
    type: tuple[str, str] | None  # HL7 service-type (code, display)
    specialty: tuple[str, str] | None
    comment: str


SERVICES = (
    Service(
        "gp",
        "GP appointments",
        ("124", "General Practice"),
        ("600", "General Medical Practice"),
        "Routine and same-day GP consultations: face to face, telephone, video and home visits.",
    ),
    Service(
        "nurse",
        "Practice nurse clinics",
        ("573", "Nurse Lead Clinic/s"),
        ("950", "Nursing"),
        "Long-term condition reviews, cervical screening, immunisations, dressings.",
    ),
    Service(
        "hca",
        "Healthcare assistant clinics",
        None,
        None,
        "Blood tests, blood pressure checks and NHS Health Checks.",
    ),
    Service(
        "pharmacist",
        "Clinical pharmacist medication reviews",
        ("537", "Medication Reviews"),
        None,
        "Structured medication reviews in person or by telephone.",
    ),
)


def service_id(config: DemoConfig, key: str) -> str:
    return demo_id(config, "service", key)


def service_of(member: StaffMember) -> str | None:
    """Key of the HealthcareService a member of staff delivers, if any."""
    return KINDS[member.kind].service


def site_of(practice: Practice, member: StaffMember) -> Site:
    """Where a member of staff works: every third clinician at the branch, if there is one."""
    if len(practice.sites) == 1 or not member.clinical:
        return practice.sites[0]
    index = practice.clinicians().index(member)
    return practice.sites[1] if index % 3 == 2 else practice.sites[0]


# Invented places and streets (any likeness to a real one is chance).
TOWNS = (
    "Ashcombe Vale", "Brackenbury", "Elmsworth", "Hollinsbridge", "Kestlewick", "Larchmere",
    "Millbrook Green", "Oakhurst Cross", "Ravensmoor", "Stonebeck", "Thornleigh", "Wexcombe",
    "Willowdene", "Fernhollow", "Marlstow", "Cindergate",
)  # fmt: skip
STREETS = (
    "High Street", "Church Lane", "Station Road", "Market Place", "Mill Lane", "Park Road",
    "Victoria Road", "The Green", "Orchard Way", "Chapel Street", "Bridge Street", "Queens Road",
)  # fmt: skip
COUNTY = "Westshire"
PRACTICE_FORMS = ("{town} Medical Centre", "{town} Surgery", "{town} Health Centre",
                  "{street} Medical Practice", "{town} Family Practice")  # fmt: skip

# A curated mix of names common in England today.
FEMALE = (
    "Olivia", "Amelia", "Isla", "Emily", "Sophie", "Grace", "Charlotte", "Hannah", "Lucy",
    "Sarah", "Rachel", "Emma", "Laura", "Rebecca", "Claire", "Helen", "Joanne", "Catherine",
    "Nicola", "Victoria", "Priya", "Aisha", "Fatima", "Amira", "Zainab", "Nadia", "Anjali",
    "Sana", "Chloe", "Megan", "Eleanor", "Harriet", "Siobhan", "Niamh", "Bethan", "Ffion",
    "Ngozi", "Abena", "Mei", "Agnieszka", "Maria", "Yasmin",
)  # fmt: skip
MALE = (
    "Oliver", "George", "Harry", "Jack", "Thomas", "James", "William", "Daniel", "Matthew",
    "David", "Andrew", "Richard", "Mark", "Paul", "Stephen", "Christopher", "Jonathan",
    "Robert", "Michael", "Peter", "Samuel", "Benjamin", "Joseph", "Alexander", "Mohammed",
    "Ahmed", "Omar", "Imran", "Rajesh", "Arjun", "Sanjay", "Tariq", "Hamza", "Kwame",
    "Chinedu", "Tomasz", "Piotr", "Rhys", "Gareth", "Owen", "Callum", "Liam", "Sean", "Wei",
)  # fmt: skip
FAMILY = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards",
    "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood",
    "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King",
    "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Parker",
    "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Bailey",
    "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall",
    "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster",
    "Chapman", "Powell", "Webb", "Rogers", "Mason", "Ali", "Hunt", "Hussain", "Campbell",
    "Matthews", "Owen", "Palmer", "Holmes", "Barnes", "Knight", "Lloyd", "Fisher", "Stevens",
    "Jenkins", "Murray", "Dixon", "Ahmed", "Shah", "Okafor", "Adeyemi", "Mensah", "Nowak",
    "Kowalski", "O'Brien", "Byrne", "Chen", "Wong", "Nguyen", "Sharma", "Kaur", "Gill",
    "Rahman", "Chowdhury", "Iqbal", "Mahmood", "Osei",
)  # fmt: skip


def staff_count(kind: StaffKind, patients: int) -> int:
    return max(1, round(kind.per_10k * patients / 10_000))


def _phone(number: int) -> str:
    return f"01632 960{number:03d}"


def _address(number: int, street: str, town: str) -> dict[str, Any]:
    return {
        "use": "work",
        "type": "both",
        "line": [f"{number} {street}"],
        "city": town,
        "district": COUNTY,
        "country": "GB",
    }


def build_practice(config: DemoConfig) -> tuple[Practice, list[dict[str, Any]]]:
    """The practice summary and its resources: Organization, Locations, HealthcareServices,
    then each member of staff's Practitioner and PractitionerRole."""
    rng = stream(config, "practice")
    ods_code = f"Y{rng.randrange(10_000, 100_000)}"
    # The main surgery is in the town its patients live in (people.TOWN); a branch nearby.
    town, branch_town = PATIENTS_TOWN, rng.choice([t for t in TOWNS if t != PATIENTS_TOWN])
    street, branch_street = rng.sample(STREETS, 2)
    name = rng.choice(PRACTICE_FORMS).format(town=town, street=street.split()[0])
    phones = iter(rng.sample(range(1000), 8))
    organization_id = demo_id(config, "organization")
    org_ref = {"reference": f"Organization/{organization_id}", "display": name}

    has_branch = config.patients >= 8000 or rng.random() < 0.5
    site_specs = [(demo_id(config, "location", "main"), name, rng.randint(1, 120), street, town)]
    if has_branch:
        site_specs.append(
            (
                demo_id(config, "location", "branch"),
                f"{branch_town} Branch Surgery",
                rng.randint(1, 80),
                branch_street,
                branch_town,
            )
        )
    sites = tuple(Site(location_id, site_name) for location_id, site_name, *_ in site_specs)
    main_phone = _phone(next(phones))

    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Organization",
            "id": organization_id,
            "meta": profile("Organization"),
            "extension": [
                {
                    "url": MAIN_LOCATION_URL,
                    "valueReference": {"reference": f"Location/{sites[0].location_id}"},
                }
            ],
            "identifier": [{"system": ODS_SYSTEM, "value": ods_code}],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": ORGANIZATION_TYPE_SYSTEM,
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ],
                    "text": "GP practice",
                }
            ],
            "name": name,
            "telecom": [{"system": "phone", "value": main_phone, "use": "work"}],
            "address": [_address(site_specs[0][2], street, town)],
        }
    ]
    for location_id, site_name, number, site_street, site_town in site_specs:
        resources.append(
            {
                "resourceType": "Location",
                "id": location_id,
                "meta": profile("Location"),
                "status": "active",
                "name": site_name,
                "mode": "instance",
                "telecom": [
                    {
                        "system": "phone",
                        "value": main_phone
                        if location_id == sites[0].location_id
                        else _phone(next(phones)),
                        "use": "work",
                    }
                ],
                "address": _address(number, site_street, site_town),
                "physicalType": {
                    "coding": [
                        {"system": PHYSICAL_TYPE_SYSTEM, "code": "bu", "display": "Building"}
                    ]
                },
                "managingOrganization": dict(org_ref),
            }
        )
    site_refs = [{"reference": f"Location/{s.location_id}", "display": s.name} for s in sites]
    for service in SERVICES:
        resources.append(_healthcare_service(config, service, org_ref, site_refs, main_phone))

    staff = _staff(config, rng)
    practice = Practice(organization_id, ods_code, name, sites, tuple(m for m, _ in staff))
    for member, (given, family, gender, number, joined) in staff:
        resources += _person(config, practice, member, given, family, gender, number, joined)
    return practice, resources


def _healthcare_service(
    config: DemoConfig,
    service: Service,
    org_ref: dict[str, str],
    site_refs: list[dict[str, str]],
    phone: str,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": service_id(config, service.key),
        "meta": profile("HealthcareService"),
        "active": True,
        "providedBy": dict(org_ref),
        "category": [general_practice_category()],
    }
    if service.type:
        code, display = service.type
        coding = {"system": SERVICE_TYPE_SYSTEM, "code": code, "display": display}
        resource["type"] = [{"coding": [coding], "text": service.name}]
    else:
        resource["type"] = [{"text": service.name}]
    if service.specialty:
        resource["specialty"] = [_specialty(service.specialty)]
    resource |= {
        "location": [dict(r) for r in site_refs],
        "name": service.name,
        "comment": service.comment,
        "telecom": [{"system": "phone", "value": phone, "use": "work"}],
        "appointmentRequired": True,
        "availableTime": [
            {
                "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                "availableStartTime": "08:00:00",
                "availableEndTime": "18:30:00",
            }
        ],
    }
    return resource


def _specialty(specialty: tuple[str, str]) -> dict[str, Any]:
    code, display = specialty
    return {"coding": [{"system": PRACTICE_SETTING_SYSTEM, "code": code, "display": display}]}


Person = tuple[str, str, str, int, date]  # given, family, gender, staff number, joined


def _staff(config: DemoConfig, rng: Any) -> list[tuple[StaffMember, Person]]:
    used_names: set[tuple[str, str]] = set()
    used_numbers: set[int] = set()
    staff: list[tuple[StaffMember, Person]] = []
    for kind in STAFF_KINDS:
        for n in range(staff_count(kind, config.patients)):
            female = rng.random() < (0.55 if kind.doctor else 0.85)
            while True:
                given = rng.choice(FEMALE if female else MALE)
                family = rng.choice(FAMILY)
                if (given, family) not in used_names:
                    used_names.add((given, family))
                    break
            number = rng.randrange(1_000_000, 10_000_000)
            while number in used_numbers:
                number = rng.randrange(1_000_000, 10_000_000)
            used_numbers.add(number)
            years = rng.randint(5, 25) if kind.kind == "gp-partner" else rng.randint(0, 12)
            joined = config.as_of - timedelta(days=365 * years + rng.randrange(365))
            display = f"Dr {given} {family}" if kind.doctor else f"{given} {family}"
            member = StaffMember(
                practitioner_id=demo_id(config, "practitioner", kind.kind, n),
                role_id=demo_id(config, "practitioner-role", kind.kind, n),
                name=display,
                kind=kind.kind,
                sds_role=kind.sds_role,
                clinical=kind.clinical,
            )
            gender = "female" if female else "male"
            staff.append((member, (given, family, gender, number, joined)))
    return staff


def _person(
    config: DemoConfig,
    practice: Practice,
    member: StaffMember,
    given: str,
    family: str,
    gender: str,
    number: int,
    joined: date,
) -> list[dict[str, Any]]:
    kind = KINDS[member.kind]
    human_name: dict[str, Any] = {"use": "official", "text": member.name, "family": family}
    human_name["given"] = [given]
    if kind.doctor:
        human_name["prefix"] = ["Dr"]
    practitioner = {
        "resourceType": "Practitioner",
        "id": member.practitioner_id,
        "meta": profile("Practitioner"),
        "identifier": [{"system": STAFF_NUMBER_SYSTEM, "value": str(number)}],
        "active": True,
        "name": [human_name],
        "gender": gender,
    }
    site = site_of(practice, member)
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": member.role_id,
        "meta": profile("PractitionerRole"),
        "active": True,
        "period": {"start": joined.isoformat()},
        "practitioner": {
            "reference": f"Practitioner/{member.practitioner_id}",
            "display": member.name,
        },
        "organization": {
            "reference": f"Organization/{practice.organization_id}",
            "display": practice.name,
        },
        "code": [concept(f"sds_{member.sds_role}").codeable(kind.title)],
    }
    if kind.specialty:
        role["specialty"] = [_specialty(kind.specialty)]
    role["location"] = [{"reference": f"Location/{site.location_id}", "display": site.name}]
    if kind.service:
        role["healthcareService"] = [
            {"reference": f"HealthcareService/{service_id(config, kind.service)}"}
        ]
    return [practitioner, role]
