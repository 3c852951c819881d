"""Names, streets and languages for synthetic patients: curated for this project.

Given names follow the birth cohort for the largest group (a Margaret is likelier born in
1940 than in 2015); the other heritage groups reflect England's larger communities (2021
Census ethnic groups, roughly weighted). Any resemblance to a real person is chance: names
are drawn independently of each other, of addresses and of dates of birth.
"""

from __future__ import annotations

from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names (some have spaces in them)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class Heritage:
    key: str
    weight: float  # share of the population, per cent (roughly)
    female: tuple[str, ...]
    male: tuple[str, ...]
    surnames: tuple[str, ...]
    # Preferred languages other than English, as BCP 47 (code, display), and how often an
    # adult of the group prefers one of them.
    languages: tuple[tuple[str, str], ...] = ()
    other_language: float = 0.0
    # Women's forms of surnames: Kowalski -> Kowalska; Singh -> Kaur; Miah -> Begum.
    feminine: tuple[tuple[str, str], ...] = ()


# British given names by birth cohort: (born before, female, male).
BRITISH_COHORTS: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        1955,
        _words(
            "Margaret Patricia Joan Barbara Dorothy Jean Mary Betty Sheila Doreen Irene Brenda "
            "Sylvia Maureen Pauline Joyce Kathleen Valerie Eileen Audrey Shirley Elizabeth Ann "
            "Christine Marjorie Gwendoline Edna Rita Hilda Evelyn"
        ),
        _words(
            "John David Michael Peter Robert Brian Anthony Kenneth William Alan Roy Ronald "
            "Derek Colin Keith Raymond Dennis Geoffrey Terence Barry Leslie Stanley Frank "
            "Norman Harold Donald Gordon Graham Malcolm Trevor"
        ),
    ),
    (
        1985,
        _words(
            "Susan Julie Karen Sarah Nicola Joanne Tracey Claire Lisa Helen Amanda Michelle "
            "Deborah Alison Jacqueline Rachel Emma Louise Kerry Samantha Angela Gillian "
            "Caroline Donna Elaine Jane Catherine Wendy Lorraine Dawn"
        ),
        _words(
            "Paul Mark Andrew Stephen Ian Gary Richard Simon Neil Darren Lee Jason Matthew "
            "Christopher Martin Steven Kevin Jonathan Craig Wayne Carl Dean Philip Nigel Adrian "
            "Stuart Timothy Shaun Gareth Russell"
        ),
    ),
    (
        2005,
        _words(
            "Jessica Laura Hannah Rebecca Charlotte Amy Sophie Lauren Chloe Katie Emily Megan "
            "Holly Bethany Natalie Danielle Georgia Jade Zoe Abigail Stacey Gemma Kirsty Leah "
            "Shannon Ellie Jasmine Lucy Victoria Naomi"
        ),
        _words(
            "Daniel Thomas James Joshua Luke Ryan Adam Jack Liam Ben Jordan Jake Nathan Callum "
            "Connor Samuel Lewis Kieran Bradley Jamie Scott Ashley Joseph Michael Alexander "
            "Harry Aaron Dominic Tom Kyle"
        ),
    ),
    (
        9999,
        _words(
            "Olivia Amelia Isla Ava Mia Isabella Grace Sophia Lily Freya Poppy Evie Ella "
            "Florence Willow Rosie Ivy Sienna Daisy Phoebe Matilda Elsie Harper Millie Emily "
            "Layla Esme Aria Maisie Luna"
        ),
        _words(
            "Oliver George Noah Arthur Leo Harry Oscar Archie Jack Charlie Freddie Alfie Theo "
            "Henry Jacob Thomas Teddy Finley Reggie Lucas Isaac Arlo Tommy Albie Max Ronnie "
            "Hugo Louie Ethan Muhammad"
        ),
    ),
)

BRITISH_SURNAMES = _words(
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans "
    "Walker White Roberts Green Hall Wood Jackson Clarke Lewis James Phillips Mason Mitchell "
    "Rose Davis Rodgers Harrison Turner Moore Hughes Edwards Cooper Martin Allen Baker Morris "
    "King Hill Scott Watson Ward Bell Clark Parker Morgan Young Bennett Cook Price Shaw "
    "Collins Richardson Bailey Holmes Marshall Chapman Webb Fisher Lee Simpson Ellis Harris "
    "Jenkins Foster Gray Butler Barnes Hunt Palmer Russell Mills Knight Lloyd Fletcher Hayes "
    "Stevens Pearson Dixon Gibson Atkinson Lawrence Carter Grant Barker Dawson Holland Rees "
    "Owen Murray Reid Stewart Campbell Graham Sutton Pollard Booth Fox Hudson Lamb Newton "
    "Nicholson Porter Saunders Spencer Stone Wells Whitehead Wilkinson Hargreaves Ashworth "
    "Francis Henry Samuels Thomas Howard Brooks"
)

HERITAGES: tuple[Heritage, ...] = (
    # The largest group: White British, and Mixed and Black Caribbean heritage, whose names
    # are largely shared with it; given names come from BRITISH_COHORTS.
    Heritage("british", 79.0, (), (), BRITISH_SURNAMES),
    Heritage(
        "irish",
        1.5,
        _words("Siobhan Niamh Aoife Ciara Sinead Orla Mary Bridget Roisin Grainne"),
        _words("Sean Patrick Liam Ciaran Declan Niall Eoin Conor Michael Brendan"),
        _names(
            "Murphy, Kelly, O'Brien, O'Connor, Byrne, Ryan, Doyle, McCarthy, O'Neill, Quinn, "
            "Gallagher, Doherty, Kennedy, Lynch, Brennan, Fitzgerald, Duffy, Nolan, Moran, Walsh"
        ),
    ),
    Heritage(
        "polish",
        1.6,
        _words(
            "Agnieszka Katarzyna Magdalena Joanna Anna Ewa Monika Aleksandra Natalia Zofia "
            "Marta Beata"
        ),
        _words(
            "Piotr Tomasz Pawel Krzysztof Marcin Michal Jakub Lukasz Kamil Mateusz Grzegorz "
            "Wojciech"
        ),
        _words(
            "Nowak Kowalski Wisniewski Wojcik Kaminski Lewandowski Zielinski Szymanski Wozniak "
            "Dabrowski Kozlowski Mazur Krawczyk Jankowski"
        ),
        (("pl", "Polish"),),
        0.35,
        (("ski", "ska"), ("cki", "cka")),
    ),
    Heritage(
        "romanian",
        1.1,
        _words("Andreea Elena Ioana Maria Alexandra Gabriela Mihaela Cristina"),
        _words("Andrei Ionut Mihai Alexandru Florin Bogdan Adrian Cosmin"),
        _words("Popescu Ionescu Popa Dumitru Stan Constantin Stoica Munteanu Radu Dinu"),
        (("ro", "Romanian"),),
        0.35,
    ),
    Heritage(
        "indian",
        3.3,
        _words("Priya Anjali Pooja Neha Sunita Kavita Meera Asha Rekha Divya Harpreet Simran"),
        _words("Rajesh Sanjay Amit Vikram Arjun Rohan Sunil Ravi Deepak Harjit Gurpreet Manish"),
        _words("Patel Shah Sharma Singh Mistry Gill Sandhu Chauhan Joshi Mehta Parmar Kumar Desai"),
        (("gu", "Gujarati"), ("pa", "Panjabi"), ("hi", "Hindi")),
        0.12,
        (("Singh", "Kaur"),),
    ),
    Heritage(
        "pakistani",
        2.8,
        _words("Ayesha Fatima Zainab Sana Amina Nadia Saima Rubina Samina Hina Maryam Iqra"),
        _words("Mohammed Imran Asif Tariq Bilal Usman Zahid Kashif Adnan Hamza Ali Farhan"),
        _words("Khan Hussain Ahmed Akhtar Iqbal Malik Mahmood Shah Butt Qureshi Raza Aslam"),
        (("ur", "Urdu"), ("pa", "Panjabi")),
        0.15,
    ),
    Heritage(
        "bangladeshi",
        1.1,
        _words("Nasima Rahima Shirin Taslima Nazma Farzana Salma Rokeya"),
        _words("Abdul Shahid Jamal Rafiq Mizanur Habibur Anwar Sohel"),
        _words("Miah Uddin Rahman Islam Ali Chowdhury Hoque Ahmed"),
        (("bn", "Bengali"),),
        0.25,
        (("Miah", "Begum"), ("Uddin", "Begum")),
    ),
    Heritage(
        "black-african",
        2.6,
        _words(
            "Adaeze Chiamaka Ngozi Funmilayo Abena Akosua Blessing Grace Precious Esther "
            "Temitope Comfort"
        ),
        _words(
            "Chukwuemeka Oluwaseun Adebayo Kwame Kofi Emmanuel Samuel Tunde Obinna Yaw Femi Daniel"
        ),
        _words(
            "Okafor Adeyemi Okonkwo Mensah Owusu Boateng Oladipo Eze Nwosu Asante Osei "
            "Ogunleye Balogun Appiah"
        ),
    ),
    Heritage(
        "somali",
        0.4,
        _words("Hodan Amina Fadumo Halima Sahra Ayan Hibo Ifrah"),
        _words("Abdi Mohamed Ahmed Hassan Yusuf Abdirahman Liban Mahad"),
        _words("Ali Hassan Mohamed Abdi Farah Omar Warsame Jama Osman"),
        (("so", "Somali"),),
        0.25,
    ),
    Heritage(
        "chinese",
        0.9,
        _names("Mei, Li Na, Xiu Ying, Jing, Yan, Hui, Wing, Mandy, Grace, Ling"),
        _words("Wei Jun Ming Hao Kai Chun Kwok Tony Jason Lei"),
        _words("Wang Li Zhang Chen Liu Wong Chan Lam Cheung Ng Yang Huang"),
        (("yue", "Cantonese"), ("zh", "Chinese")),
        0.2,
    ),
    Heritage(
        "middle-eastern",
        1.5,
        _words("Fatima Mariam Layla Noor Huda Rania Yasmin Salma Zahra Shirin"),
        _words("Ahmad Omar Yousef Khalid Karim Tariq Samir Rami Reza Farid"),
        _words("Haddad Hassan Nasser Saleh Mansour Aziz Habib Karimi Ahmadi Rahimi Hosseini"),
        (("ar", "Arabic"), ("fa", "Persian"), ("ku", "Kurdish")),
        0.3,
    ),
)

TITLES_MALE = ("Mr",)
TITLES_FEMALE = ("Mrs", "Ms", "Miss")

STREET_WORDS = _words(
    "Church Mill Station Park Victoria Queens Kings Grange Orchard Meadow Willow Oak Elm "
    "Beech Chestnut Rose Albert Cromwell Nelson Windsor Hawthorn Heather Ferndale Brook Lime "
    "Sycamore Chapel Market School Manor Bridge Cedar Ash Poplar Primrose Clarence Moor "
    "Highfield Springfield Fairfield Riverside Woodland Croft Holly Laburnum Larch Bracken"
)
STREET_KINDS = _words(
    "Road Street Lane Avenue Close Drive Way Crescent Grove Gardens Court Terrace View Walk "
    "Place Rise"
)
# Names of blocks of flats, for the addresses that are flats.
BUILDINGS = _names(
    "Alder House, Beacon Court, Canal Wharf, Denby House, Eastgate Court, Foundry Mews, "
    "Granary Court, Harcourt House, Ivy Court, Jubilee House, Kestrel House, Linden Court"
)
