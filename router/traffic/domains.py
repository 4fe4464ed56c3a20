"""The four sample businesses: a clinic, a SaaS billing desk, a parcel carrier and a retail bank.

Scenario weights set the traffic mix: most calls are routine (questions, bookings, identity checks, chatter); a
minority involve payments, complaints, health or account security, and a few are emergencies.
"""

from __future__ import annotations

from router.traffic.phrases import (
    ADDRESS,
    CARD_NUMBER,
    DATE_OF_BIRTH,
    EMAIL,
    FULL_NAME,
    PHONE,
    POSTCODE,
    Domain,
    Scenario,
    answered,
    beat,
    tool,
)

# -- clinic ---------------------------------------------------------------------------------------------------------

CLINIC_FAQS = answered(
    "faq",
    (
        ("What time are you open on Saturdays?", "Are you open at the weekend?"),
        "We're open 8 to 6 on weekdays and 9 to 1 on Saturdays; we're closed on Sundays.",
    ),
    (
        ("Do you take Blue Cross insurance?", "Is my insurance accepted there? It's Aetna."),
        "We accept Blue Cross, Aetna, Cigna and most Medicare plans. Bring your card and we'll check your "
        "coverage at the front desk.",
    ),
    (
        ("Where do I park when I get there?", "Is there parking?"),
        "There's free parking behind the building, with two accessible spaces right by the entrance.",
    ),
    ("Do you do walk-in flu shots?", "Flu shots are walk-in on weekday mornings until 11, no appointment needed."),
    (
        "Is the clinic on the ground floor? My mum uses a wheelchair.",
        "Yes, everything is on the ground floor and the entrance has an automatic door.",
    ),
    (
        ("How early should I get there?", "Do I need to come early for paperwork?"),
        "Please arrive about ten minutes early so we can update your details.",
    ),
    (
        ("Do I need to bring anything?", "What should I bring with me?"),
        "Just your insurance card, a photo ID and a list of any medications you take.",
    ),
    (
        "Can I fill out the forms online beforehand?",
        "Yes, you'll get a text with a link to the forms the day before your visit.",
    ),
    ("How long does a physical usually take?", "A routine physical takes about thirty to forty minutes."),
    (
        ("Is there a fee if I cancel late?", "What happens if I have to cancel last minute?"),
        "We ask for 24 hours notice; late cancellations may carry a 25 dollar fee, though we waive it for illness.",
    ),
)

CLINIC_SLOTS = (
    beat(
        "scheduling",
        caller=(
            "Do you have anything on {day} morning?",
            "What's the earliest you've got?",
            "Anything later in the afternoon? I work until three.",
            "Could I get something on {day}?",
            "Is there anything early next week?",
        ),
        replies=(
            "On {day} I have {time} or a little later with {doctor}.",
            "The earliest is {day} at {time} with {doctor}.",
            "I can offer {day} at {time}; would that work?",
        ),
        prompts=("Let me look at the calendar.", "Sure, which day suits you best?"),
    ),
    beat(
        "scheduling",
        caller=(
            "The {time} works for me.",
            "Yes, book that one please.",
            "Perfect, let's do {day}.",
            "Hmm, okay, yeah, I'll take it.",
        ),
        replies=(
            "You're all set for {day} at {time} with {doctor}. You'll get a text confirmation shortly.",
            "Done, {day} at {time}. We'll send a reminder the day before.",
        ),
    ),
)

CLINIC = Domain(
    name="clinic",
    tenant="clinic-north",
    agent="front-desk",
    system_prompt=(
        "You are Ava, the phone receptionist of North Clinic, a family practice. Help callers book, move and "
        "cancel appointments, answer questions about opening hours, insurance and directions, and take messages "
        "for the care team. Verify identity with full name and date of birth before discussing any appointment. "
        "Never give medical advice: for symptoms, offer a nurse callback or an urgent appointment, and for any "
        "emergency tell the caller to hang up and dial 911 immediately. Keep answers short and friendly; this "
        "is a phone call."
    ),
    greetings=(
        "Thank you for calling North Clinic, this is Ava. How can I help you today?",
        "North Clinic, Ava speaking. What can I do for you?",
        "Hi, you've reached North Clinic. I'm Ava, the virtual receptionist. How can I help?",
    ),
    tools=(
        tool("find_slots", "Free appointment slots", doctor="Doctor name or 'any'", day="Preferred day"),
        tool("book_appointment", "Book a slot for a verified patient", patient_id="Patient id", slot_id="Slot id"),
        tool("cancel_appointment", "Cancel an appointment", appointment_id="Appointment id"),
        tool("request_nurse_callback", "Ask a nurse to call the patient back", patient_id="Patient id", reason="Why"),
    ),
    scenarios=(
        Scenario(
            "book-appointment",
            34,
            openers=(
                beat(
                    "scheduling",
                    caller=(
                        "Hi, I'd like to book an appointment with {doctor}.",
                        "I need to see a doctor sometime this week, nothing urgent.",
                        "I'm calling to make an appointment for my annual physical.",
                        "Can I get my daughter in for her school sports check?",
                        "I'd like to schedule a follow up with {doctor}, she said to come back in a month.",
                    ),
                    replies=("Of course, I can help with that.", "Sure, happy to book that for you."),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, PHONE),
            core=CLINIC_SLOTS,
        ),
        Scenario(
            "move-or-cancel",
            18,
            openers=(
                beat(
                    "scheduling",
                    caller=(
                        "I need to move my appointment on {day}.",
                        "I have to cancel my appointment tomorrow, something came up at work.",
                        "Can I push my appointment back a week?",
                        "I'm running late for my {time}, can I still come?",
                    ),
                    replies=("No problem, let me pull that up.", "Sure, I can help you change that."),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH),
            core=CLINIC_SLOTS,
        ),
        Scenario("questions", 20, openers=CLINIC_FAQS, identity=(), core=(), detours=2.5),
        Scenario(
            "prescription-refill",
            8,
            openers=(
                beat(
                    "other",
                    caller=(
                        "I need a refill on my lisinopril, I'm almost out.",
                        "My blood pressure tablets ran out yesterday, can the doctor send a new prescription?",
                        "I'm calling about my inhaler prescription, the pharmacy says it expired.",
                        "Can {doctor} renew my metformin? I've got three days left.",
                    ),
                    replies=("I can send a refill request to the care team.", "Let me get that request started."),
                    risks=("medical",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH),
            core=(
                beat(
                    "data_collection",
                    caller=(
                        "It's the ten milligram one, once a day.",
                        "Twenty milligrams, morning and night.",
                        "The blue one, two puffs when I need it.",
                    ),
                    replies=("Thanks, I've noted the dose.", "Got it."),
                    prompts=("Which dose are you taking?",),
                    risks=("medical",),
                ),
                beat(
                    "data_collection",
                    caller=(
                        "Send it to the pharmacy on {street}.",
                        "The CVS on {street}, please.",
                        "Same pharmacy as last time.",
                    ),
                    replies=(
                        "The request is in; refills are usually ready within two working days.",
                        "Done. The pharmacy will text you when it's ready.",
                    ),
                    prompts=("Which pharmacy should it go to?",),
                ),
            ),
        ),
        Scenario(
            "symptoms",
            8,
            agent="nurse-line",
            openers=(
                beat(
                    "other",
                    caller=(
                        "My son has had a fever of a hundred and two since last night.",
                        "I've had a rash spreading on my arm for three days and it's getting itchy.",
                        "I keep getting dizzy when I stand up, is that something to worry about?",
                        "I think my ear is infected, it's really painful and there's some discharge.",
                        "I started the new antibiotics and now my stomach is really upset.",
                    ),
                    replies=(
                        "I'm sorry you're dealing with that. I can't give medical advice, but I can get a nurse to "
                        "call you back or find you an urgent appointment.",
                        "Thanks for telling me. Let me get a nurse to look at this with you.",
                    ),
                    risks=("medical",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH),
            core=(
                beat(
                    "other",
                    caller=(
                        "He's also not really eating and he's pretty sleepy.",
                        "It's not spreading fast but it's red and warm.",
                        "It happens maybe twice a day, mostly in the morning.",
                        "I took ibuprofen but it didn't help much.",
                    ),
                    replies=(
                        "Thank you. I've passed that to the nurse, who will call you within the hour.",
                        "Noted. If it gets worse before the nurse calls, please go to urgent care.",
                    ),
                    prompts=("Can you tell me a bit more about how it's been?",),
                    risks=("medical",),
                ),
                beat(
                    "scheduling",
                    caller=(
                        "Can I just come in today instead?",
                        "Is there any slot this afternoon?",
                        "Okay, can you book the earliest one you have?",
                    ),
                    replies=("I have a same-day slot at {time} with {doctor}; I've held it for you.",),
                ),
            ),
        ),
        Scenario(
            "bill",
            6,
            openers=(
                beat(
                    "transaction",
                    caller=(
                        "I got a bill for {amount} and I don't understand what it's for.",
                        "I want to pay my balance over the phone.",
                        "Can I set up a payment plan for my last visit?",
                    ),
                    replies=("I can help with your bill.", "Sure, let's look at your balance."),
                    risks=("payment",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "Okay, I'll pay the {amount} now then.",
                        "Fine, let's pay it today.",
                        "Can I pay half now and half next month?",
                    ),
                    replies=("Sure, I can take a card payment now.",),
                    prompts=("Your balance is {amount}, from the visit on the 3rd. Would you like to pay it now?",),
                    risks=("payment",),
                ),
                CARD_NUMBER,
            ),
        ),
        Scenario(
            "complaint",
            4,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "I waited over an hour past my appointment time yesterday and nobody told me anything.",
                        "The person at the front desk was really rude to my mother last week.",
                        "I've been trying to get my test results for two weeks and nobody calls me back.",
                    ),
                    replies=(
                        "I'm really sorry, that's not the experience we want you to have.",
                        "I apologise, that shouldn't have happened.",
                    ),
                ),
            ),
            identity=(FULL_NAME,),
            core=(
                beat(
                    "complaint",
                    caller=(
                        "I want to speak to the practice manager.",
                        "Honestly I'm thinking of switching clinics.",
                        "This isn't the first time either.",
                    ),
                    replies=(
                        "I've logged a formal complaint and the practice manager will call you by tomorrow.",
                        "I understand. I've escalated this to the practice manager.",
                    ),
                ),
            ),
        ),
        Scenario(
            "emergency",
            2,
            openers=(
                beat(
                    "other",
                    caller=(
                        "My husband is having chest pains and his left arm is going numb.",
                        "My mother fell in the kitchen and she's not responding to me.",
                        "I think I'm having an allergic reaction, my throat feels like it's closing.",
                        "My baby is having a seizure, what do I do?",
                    ),
                    replies=(
                        "This sounds like an emergency. Please hang up and call 911 right now.",
                        "Please call 911 immediately. If you can, unlock the door for the paramedics.",
                    ),
                    risks=("emergency", "medical"),
                ),
            ),
            identity=(),
            core=(
                beat(
                    "other",
                    caller=(
                        "He's breathing but he's really pale and sweating.",
                        "Okay okay, I'm calling them now.",
                        "She's breathing, I think, should I move her?",
                    ),
                    replies=(
                        "Don't move her; stay with her and call 911 now. They'll guide you until help arrives.",
                        "Please call 911 now and stay on the line with them.",
                    ),
                    risks=("emergency", "medical"),
                ),
            ),
        ),
    ),
    faqs=CLINIC_FAQS,
)

# -- SaaS billing ---------------------------------------------------------------------------------------------------

SAAS_FAQS = answered(
    "faq",
    (
        ("Where do I download our invoices?", "How do I get a copy of last month's invoice?"),
        "Invoices are under Settings, then Billing, then Invoice history; each one downloads as a PDF.",
    ),
    (
        "Can you add our VAT number to the invoices?",
        "Yes, add it under Billing details and it appears on every invoice from the next one.",
    ),
    (
        ("Do you have a discount for nonprofits?", "Is there an education discount?"),
        "Registered nonprofits and schools get 30 percent off; send us your registration document and we'll "
        "apply it from the next invoice.",
    ),
    (("Is SSO included in the {plan} plan?", "Do we get single sign-on?"), "SSO is included from Business up."),
    (
        ("What payment methods do you accept?", "Can we pay by bank transfer?"),
        "We take Visa, Mastercard and Amex, and bank transfer on annual plans.",
    ),
    (
        ("When exactly does the renewal charge go out?", "What day do you bill us?"),
        "Renewals are charged at midnight UTC on your billing date, and the receipt is emailed straight away.",
    ),
)

SAAS = Domain(
    name="saas-billing",
    tenant="saas-billing",
    agent="billing-assistant",
    system_prompt=(
        "You are the billing voice assistant of Cloudlane, a project management SaaS. You help account owners "
        "with failed payments, invoices, plan changes, refunds and cancellations. Verify the caller with the "
        "account email and company name before discussing the account. Take card details only through the "
        "update_payment_method tool; never repeat a full card number back. Escalate security concerns and legal "
        "threats to a human. Be concise: callers are on the phone."
    ),
    greetings=(
        "Hi, this is the Cloudlane billing line. How can I help?",
        "Cloudlane billing, how can I help you today?",
        "Thanks for calling Cloudlane. I'm the billing assistant. What can I do for you?",
    ),
    tools=(
        tool("lookup_account", "Find an account", email="Account email", company="Company name"),
        tool("update_payment_method", "Store a new card via the PCI vault", account_id="Account", token="Vault token"),
        tool("retry_invoice", "Retry a failed invoice charge", invoice_id="Invoice id"),
        tool("issue_refund", "Refund a charge", charge_id="Charge id", reason="Reason"),
    ),
    scenarios=(
        Scenario(
            "failed-payment",
            30,
            openers=(
                beat(
                    "transaction",
                    caller=(
                        "Hi, I got an email saying our payment failed.",
                        "Our renewal didn't go through and now the workspace is read-only.",
                        "The card got declined for the subscription, I don't know why.",
                        "We keep getting failed payment warnings, can you help?",
                    ),
                    replies=(
                        "I'm sorry about that, let's get it fixed.",
                        "I can help you sort out the failed payment.",
                    ),
                    risks=("payment",),
                ),
            ),
            identity=(EMAIL, FULL_NAME),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "I think the card on file expired last month.",
                        "Oh, we switched banks, that's probably why.",
                        "It should have had enough money on it.",
                    ),
                    replies=(
                        "That's the usual reason. Would you like to add a new card now?",
                        "That would explain it. I can take a new card and retry the charge.",
                    ),
                    prompts=("I can see invoice {invoice} for {amount} failed on the 1st.",),
                    risks=("payment",),
                ),
                CARD_NUMBER,
                beat(
                    "transaction",
                    caller=(
                        "Can you retry the charge now?",
                        "Great, will the workspace unlock straight away?",
                        "Okay, please charge it today.",
                    ),
                    replies=(
                        "Done, the payment of {amount} went through and the workspace is active again.",
                        "The retry succeeded, and you'll get the receipt by email.",
                    ),
                    risks=("payment",),
                ),
            ),
            asides=SAAS_FAQS,
        ),
        Scenario(
            "invoice-questions",
            24,
            openers=SAAS_FAQS,
            identity=(EMAIL,),
            core=(),
            asides=answered(
                "faq",
                (
                    "Why is this month's invoice higher than last month?",
                    "This month includes {seats} extra seats added mid-cycle, billed pro rata for the days used.",
                ),
                (
                    "What's this line item called overage?",
                    "Overage is storage above your plan's allowance, charged per extra 100 gigabytes.",
                ),
                (
                    "Can I get the invoices sent to our finance team instead of me?",
                    "Yes, add their address as a billing contact and they'll receive every invoice.",
                ),
            ),
            detours=2,
        ),
        Scenario(
            "plan-change",
            14,
            openers=answered(
                "complex_reasoning",
                (
                    "We're on {plan} with {seats} seats; if we add ten people in March, is annual billing still "
                    "cheaper than monthly?",
                    "Good question. Annual billing saves two months, and seats added mid-year are prorated, so "
                    "with your growth it stays about 15 percent cheaper than monthly over the year.",
                ),
                (
                    "Can you help me work out whether to upgrade now or wait until our renewal, given we'll probably "
                    "double the team by summer?",
                    "Upgrading now costs a prorated difference for the months left; waiting avoids that, but you'd "
                    "keep the current limits until renewal. With the team doubling, upgrading at renewal is slightly "
                    "cheaper if you can live with those limits until then.",
                ),
                (
                    "If we downgrade to Team but keep the storage add-on, what would we pay per year compared with "
                    "staying where we are?",
                    "On Team with the add-on you'd pay about a third less per year, but you'd lose SSO and the audit "
                    "log, which your admins use weekly according to the account activity.",
                ),
            ),
            identity=(EMAIL,),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "Okay, let's switch to annual then.",
                        "Go ahead and upgrade us to {plan}.",
                        "Let's leave it for now, I'll talk to my boss.",
                    ),
                    replies=(
                        "Done; the change takes effect today and the prorated amount appears on the next invoice.",
                        "No problem, nothing has changed on the account.",
                    ),
                ),
            ),
        ),
        Scenario(
            "double-charge",
            12,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "You charged us twice this month, {amount} both times.",
                        "I see two identical charges from you on our card statement.",
                        "We were billed after we cancelled, and I want that money back.",
                    ),
                    replies=(
                        "I'm sorry about that, let me check the charges.",
                        "That's frustrating, I'll look into it right away.",
                    ),
                    risks=("payment",),
                ),
            ),
            identity=(EMAIL, FULL_NAME),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "I want a refund for the second charge.",
                        "Can you refund it to the same card?",
                        "Please just reverse it.",
                    ),
                    replies=(
                        "I've refunded the duplicate {amount}; it takes 5 to 10 business days to show.",
                        "The refund is issued to the original card.",
                    ),
                    risks=("payment",),
                ),
                beat(
                    "complaint",
                    caller=(
                        "This is the second time this has happened, honestly.",
                        "I'm pretty annoyed, we're a small team and this matters.",
                        "Okay, but make sure it doesn't happen again.",
                    ),
                    replies=(
                        "I completely understand, and I've flagged the account so billing double-checks renewals.",
                        "You're right to be annoyed. I've added a note and a one-month credit as an apology.",
                    ),
                ),
            ),
        ),
        Scenario(
            "account-security",
            7,
            openers=(
                beat(
                    "other",
                    caller=(
                        "Someone changed the billing email on our account and it wasn't us.",
                        "I'm locked out and the two-factor codes aren't arriving.",
                        "We got a receipt for a card we never added.",
                    ),
                    replies=(
                        "That's worrying; let's secure the account first.",
                        "I'll lock billing changes on the account while we check.",
                    ),
                    risks=("account_security",),
                ),
            ),
            identity=(EMAIL, FULL_NAME, PHONE),
            core=(
                beat(
                    "other",
                    caller=(
                        "No, nobody else on the team should have admin rights.",
                        "Can you reset the password and log everyone out?",
                        "Please remove that card right away.",
                    ),
                    replies=(
                        "Done: all sessions are signed out and a security specialist will call you within 30 minutes.",
                        "I've removed the card and opened a security case for you.",
                    ),
                    risks=("account_security",),
                ),
            ),
        ),
        Scenario(
            "cancellation-dispute",
            5,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "I've asked three times to cancel and you keep billing me. If this isn't sorted I'm going "
                        "to my lawyer.",
                        "Under GDPR I want all of our data deleted and written confirmation.",
                        "Your renewal terms weren't disclosed and I'm going to file a chargeback and a complaint "
                        "with the consumer protection office.",
                    ),
                    replies=(
                        "I understand, and I'm sorry it's come to this. Let me pass this to our accounts team now.",
                        "I've recorded your request and a specialist will confirm in writing within 30 days.",
                    ),
                    risks=("legal",),
                ),
            ),
            identity=(EMAIL,),
            core=(
                beat(
                    "complaint",
                    caller=(
                        "I want that in writing.",
                        "And I expect a full refund for the months after I cancelled.",
                        "Fine. But I'm keeping records of this call.",
                    ),
                    replies=(
                        "You'll receive written confirmation by email today.",
                        "I've requested the refund for every charge after your first cancellation request.",
                    ),
                    risks=("legal",),
                ),
            ),
        ),
        Scenario("faq-only", 8, openers=SAAS_FAQS, identity=(), core=(), detours=2.5),
    ),
    faqs=SAAS_FAQS,
)

# -- logistics ------------------------------------------------------------------------------------------------------

LOGISTICS_FAQS = answered(
    "faq",
    (
        ("What time does the depot close?", "How late is the depot open?"),
        "The depot is open until 7pm on weekdays and 2pm on Saturdays.",
    ),
    (
        ("Do you deliver on Sundays?", "Is there weekend delivery?"),
        "We deliver Monday to Saturday; Sunday delivery is only for express parcels in some areas.",
    ),
    (
        ("Can the driver leave it with a neighbour?", "Can it be left in a safe place?"),
        "Yes, if you set a neighbour or a safe place in the app, the driver will use it.",
    ),
    (
        ("How do I know what time the driver is coming?", "Will I get a time slot?"),
        "On the delivery day you'll get a text with a one-hour window in the morning.",
    ),
    (
        "Do you need a signature for this one?",
        "This parcel needs a signature because of its value, so someone over 18 has to be in.",
    ),
    (("Can I track it in the app?", "Is there live tracking?"), "Yes, the app shows the van live on the day."),
)

TRACKING = beat(
    "data_collection",
    caller=(
        "The tracking number is {tracking}.",
        "It's {tracking}.",
        "Uh, let me find it, okay, {tracking}.",
        "I've got order {order}, is that enough?",
    ),
    replies=("Thanks, I've found the parcel.", "Got it, one moment.", "Thank you, I can see it."),
    prompts=("Can I have the tracking number?", "Do you have the tracking or order number?"),
)

LOGISTICS = Domain(
    name="logistics",
    tenant="logistics-express",
    agent="delivery-desk",
    system_prompt=(
        "You are the voice assistant of Express Parcel, a delivery company. Help callers track parcels, "
        "rearrange deliveries, change addresses before dispatch, report damaged or missing parcels and pay "
        "import duties. Ask for the tracking number first. Offer compensation only according to the tool's "
        "answer. If anyone reports an accident or injury involving our vans, tell them to call emergency "
        "services and escalate to the safety team."
    ),
    greetings=(
        "Express Parcel, how can I help you today?",
        "Hi, you're through to Express Parcel customer service. What can I do for you?",
        "Thanks for calling Express Parcel. Are you calling about a delivery?",
    ),
    tools=(
        tool("track_parcel", "Where a parcel is", tracking_number="Tracking number"),
        tool("reschedule_delivery", "Move a delivery", tracking_number="Tracking number", day="New day"),
        tool("open_claim", "Damaged or lost parcel claim", tracking_number="Tracking number", kind="damage|loss"),
    ),
    scenarios=(
        Scenario(
            "where-is-my-parcel",
            34,
            openers=(
                beat(
                    "faq",
                    caller=(
                        "Hi, I'm checking on a parcel, it was supposed to come yesterday.",
                        "Where's my package? The app just says in transit.",
                        "I'm waiting for a delivery and I need to know if I should stay home.",
                        "Has my parcel left the depot yet?",
                    ),
                    replies=("Let me check that for you.", "Sure, I can look that up."),
                ),
            ),
            identity=(TRACKING, POSTCODE),
            core=(
                beat(
                    "faq",
                    caller=(
                        "So when is it actually going to come?",
                        "Will it definitely come today?",
                        "Is it on the van already?",
                    ),
                    replies=(
                        "It's on today's van and the window is between {time} and an hour after.",
                        "It's at the local depot and scheduled for delivery on {day}.",
                    ),
                    prompts=("I can see it at the {city} depot.",),
                ),
                beat(
                    "scheduling",
                    caller=(
                        "Can I pick it up from the depot instead?",
                        "Could you deliver it on {day} instead? I'm out all day.",
                        "Can the driver come after five?",
                    ),
                    replies=(
                        "Done, it will wait for you at the {city} depot from tomorrow morning; bring photo ID.",
                        "I've moved it to {day}. You'll get a new window by text that morning.",
                    ),
                ),
            ),
        ),
        Scenario(
            "delay-complaint",
            18,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "This is the third day in a row it says out for delivery and nothing shows up.",
                        "I took a day off work to wait for this parcel and nobody came.",
                        "The driver marked it as delivered but there's nothing here.",
                        "Your tracking says attempted delivery but I was home all day and nobody knocked.",
                    ),
                    replies=(
                        "I'm really sorry about that. Let me look at what happened.",
                        "That's not good enough, I'm sorry. Let me check the driver's notes.",
                    ),
                ),
            ),
            identity=(TRACKING, FULL_NAME),
            core=(
                beat(
                    "complaint",
                    caller=(
                        "Honestly this is ridiculous, I've been waiting over a week.",
                        "So what are you going to do about it?",
                        "I want some kind of compensation for this.",
                    ),
                    replies=(
                        "I understand. I've raised a priority trace with the depot and added a credit of {amount}.",
                        "I've escalated it; the depot manager will call you today.",
                    ),
                ),
                beat(
                    "scheduling",
                    caller=(
                        "Fine, can it come first thing tomorrow?",
                        "Just make sure it arrives on {day}.",
                    ),
                    replies=("It's booked as a priority delivery for the morning of {day}.",),
                ),
            ),
        ),
        Scenario(
            "change-delivery",
            14,
            openers=(
                beat(
                    "scheduling",
                    caller=(
                        "Can you deliver on {day} instead?",
                        "I need to change the delivery address before it goes out.",
                        "I'm moving house, can you send it to my new place?",
                    ),
                    replies=("Sure, I can change that.", "No problem, let's update the delivery."),
                ),
            ),
            identity=(TRACKING, FULL_NAME),
            core=(
                ADDRESS,
                beat(
                    "scheduling",
                    caller=(
                        "And {day} is fine for the delivery.",
                        "Morning is better if possible.",
                    ),
                    replies=("All set: {day} morning at the new address.",),
                ),
            ),
        ),
        Scenario(
            "customs-fee",
            8,
            openers=(
                beat(
                    "transaction",
                    caller=(
                        "I got a text asking me to pay a customs fee of {amount}, is that real?",
                        "I need to pay the import duty to get my package released.",
                        "Why do I have to pay {amount} on a gift from my sister?",
                    ),
                    replies=(
                        "Let me check whether there's a real duty on that parcel.",
                        "I can tell you exactly what's owed.",
                    ),
                    risks=("payment",),
                ),
            ),
            identity=(TRACKING,),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "Okay, can I pay it now over the phone?",
                        "Fine, I'll pay it.",
                    ),
                    replies=("Yes, I can take a card payment for the {amount} duty.",),
                    prompts=("There is a genuine import duty of {amount} on this parcel.",),
                    risks=("payment",),
                ),
                CARD_NUMBER,
            ),
        ),
        Scenario(
            "damaged-parcel",
            10,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "The box arrived crushed and the lamp inside is broken.",
                        "My parcel came soaking wet and the books are ruined.",
                        "Half the order is missing from the box.",
                    ),
                    replies=("I'm sorry, let's open a claim.", "That's really disappointing, I'm sorry."),
                ),
            ),
            identity=(TRACKING, EMAIL),
            core=(
                beat(
                    "transaction",
                    caller=(
                        "I'd like a refund, or a replacement if that's faster.",
                        "Who pays for this, you or the shop?",
                        "Do you need photos?",
                    ),
                    replies=(
                        "I've opened claim number {order}; please reply to the email with photos and we decide "
                        "within 3 working days.",
                        "We cover damage in transit up to {big_amount}; the claim is open.",
                    ),
                    risks=("payment",),
                ),
            ),
        ),
        Scenario(
            "van-accident",
            1,
            openers=(
                beat(
                    "other",
                    caller=(
                        "Your van just crashed into the car outside my house and the driver looks hurt.",
                        "There's smoke coming out of one of your delivery vans on my street.",
                        "Your driver just knocked over a cyclist at the corner, he's lying in the road.",
                    ),
                    replies=(
                        "Please call 911 right now. Don't go near the van if there's smoke.",
                        "Please call emergency services immediately; I'm alerting our safety team.",
                    ),
                    risks=("emergency",),
                ),
            ),
            identity=(),
            core=(
                beat(
                    "other",
                    caller=(
                        "Okay, someone's already calling an ambulance.",
                        "It's on {street} in {city}.",
                        "The cyclist is awake but his leg looks bad.",
                    ),
                    replies=(
                        "Thank you. Stay safe, keep clear of traffic, and our safety team is on the way.",
                        "Thanks, I've passed the location to our safety team.",
                    ),
                    risks=("emergency",),
                ),
            ),
        ),
        Scenario("faq-only", 15, openers=LOGISTICS_FAQS, identity=(), core=(), detours=2.5),
    ),
    faqs=LOGISTICS_FAQS,
)

# -- retail bank ----------------------------------------------------------------------------------------------------

BANK_FAQS = answered(
    "faq",
    (
        ("What time does the branch on {street} close today?", "Is the {city} branch open on Saturday?"),
        "That branch closes at 5 today and opens 9 to 12 on Saturdays.",
    ),
    (
        ("What's your routing number?", "I need the routing number for a form."),
        "It's printed at the bottom left of your checks and under Account details in the app; I can text it too.",
    ),
    (
        "How do I set up direct deposit for my paycheck?",
        "Give your employer the account and routing numbers from the app, under Account details; the first "
        "deposit usually lands within two pay cycles.",
    ),
    (
        ("Is there a fee for using other banks' ATMs?", "Do you charge for cash machines abroad?"),
        "We refund up to four out-of-network ATM fees a month on checking; abroad there's a 3 percent fee.",
    ),
    (
        ("How long does a transfer to another bank take?", "When will my transfer arrive?"),
        "Transfers to other banks usually arrive the next business day.",
    ),
)

SSN_LAST4 = beat(
    "data_collection",
    caller=("Last four are {ssn4}.", "It's {ssn4}.", "{ssn4}."),
    replies=("Thank you, you're verified.", "Thanks, that's all confirmed."),
    prompts=("And the last four digits of your social security number?",),
    risks=("pii",),
)

BANK = Domain(
    name="bank",
    tenant="bank-retail",
    agent="retail-assistant",
    system_prompt=(
        "You are the voice assistant of Harbor Bank's retail banking line. Verify callers with full name, date of "
        "birth and the last four digits of their social security number before discussing an account. You can "
        "give balances and recent transactions, block cards, order replacements, make transfers to saved or new "
        "payees and answer product questions. Never ask for a PIN or an online banking password. Hand suspected "
        "fraud, bereavement and legal matters to a specialist."
    ),
    greetings=(
        "Welcome to Harbor Bank. How can I help you today?",
        "Harbor Bank, this is the virtual assistant. What can I help you with?",
        "Thanks for calling Harbor Bank. In a few words, what are you calling about?",
    ),
    tools=(
        tool("verify_customer", "Identity check", name="Full name", dob="Date of birth", ssn_last4="SSN last 4"),
        tool("get_balance", "Balances of the customer's accounts", customer_id="Customer id"),
        tool("block_card", "Block a card", card_id="Card id", reason="lost|stolen|fraud"),
        tool("create_transfer", "Send money", from_account="Account", iban="Payee IBAN", amount="Amount"),
    ),
    scenarios=(
        Scenario(
            "balance",
            20,
            openers=(
                beat(
                    "faq",
                    caller=(
                        "What's my current balance?",
                        "I just want to check if my paycheck came in.",
                        "Can you tell me the last few transactions on my checking account?",
                    ),
                    replies=("I can help with that once you're verified.", "Sure, let me verify you first."),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, SSN_LAST4),
            core=(),
            asides=(
                *answered(
                    "faq",
                    (
                        ("And what about the savings account?", "How much is in savings?"),
                        "Your savings account has {big_amount}, a little more than last month.",
                    ),
                    ("Did the {amount} from my sister come in?", "Yes, {amount} arrived this morning."),
                    (
                        "When will the pending one clear?",
                        "Pending card payments usually clear within two business days.",
                    ),
                ),
                *BANK_FAQS,
            ),
            detours=2,
        ),
        Scenario(
            "lost-card",
            12,
            agent="card-services",
            openers=(
                beat(
                    "other",
                    caller=(
                        "I lost my debit card, I think I left it at the gym.",
                        "My wallet was stolen with my credit card in it.",
                        "I can't find my card anywhere, can you freeze it?",
                    ),
                    replies=(
                        "I'm sorry to hear that. Let's block it straight away.",
                        "Let's protect your account first.",
                    ),
                    risks=("account_security", "payment"),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, SSN_LAST4),
            core=(
                beat(
                    "other",
                    caller=(
                        "Yes, please block it.",
                        "Wait, there's a charge of {amount} I don't recognise from this morning.",
                        "It's the card ending {last4}.",
                    ),
                    replies=(
                        "The card ending {last4} is blocked, and I've flagged that charge for a dispute.",
                        "Done, it's blocked. Nobody can use it from now on.",
                    ),
                    risks=("account_security", "payment"),
                ),
                beat(
                    "data_collection",
                    caller=(
                        "Send the new one to my home address please.",
                        "I've moved actually, it's {street}, {city} now.",
                    ),
                    replies=("Your new card will arrive in 3 to 5 business days.",),
                    prompts=("Shall I send a replacement card to the address we have on file?",),
                ),
            ),
        ),
        Scenario(
            "transfer",
            12,
            openers=(
                beat(
                    "transaction",
                    caller=(
                        "I'd like to send {big_amount} to my landlord.",
                        "I need to make a transfer to a new payee.",
                        "Can I move {big_amount} from savings to checking?",
                    ),
                    replies=("Sure, I can set that up.", "No problem, let's do the transfer."),
                    risks=("payment",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, SSN_LAST4),
            core=(
                beat(
                    "data_collection",
                    caller=(
                        "The IBAN is {iban}.",
                        "Okay, it's {iban}, under the name {name}.",
                    ),
                    replies=("Thanks, the payee's bank checks out.", "Got it, I've saved the payee."),
                    prompts=("What are the payee's account details?",),
                    risks=("payment", "pii"),
                ),
                beat(
                    "transaction",
                    caller=(
                        "Yes, confirm it please.",
                        "Reference it as rent for {day}.",
                    ),
                    replies=(
                        "The transfer of {big_amount} is on its way and should arrive tomorrow.",
                        "Done, you'll see it in your transactions in a minute.",
                    ),
                    risks=("payment",),
                ),
            ),
        ),
        Scenario(
            "fraud",
            8,
            agent="card-services",
            openers=(
                beat(
                    "other",
                    caller=(
                        "Someone called me saying they're from the bank and asked for my PIN.",
                        "I got a text about a blocked account with a link and I clicked it.",
                        "There are three payments on my account I didn't make.",
                    ),
                    replies=(
                        "Thank you for calling us. We never ask for your PIN; let's secure your account.",
                        "You did the right thing calling. I'll put a hold on the account while we check.",
                    ),
                    risks=("account_security",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, SSN_LAST4),
            core=(
                beat(
                    "other",
                    caller=(
                        "I might have given them my card number, I'm not sure.",
                        "They knew my address, that's why I believed them.",
                        "I entered my online banking password on that page.",
                    ),
                    replies=(
                        "I've blocked the card and reset your online banking; a fraud specialist will call you today.",
                        "Your account is protected now, and the fraud team will review every recent payment.",
                    ),
                    risks=("account_security", "payment"),
                ),
            ),
        ),
        Scenario(
            "mortgage-question",
            7,
            openers=answered(
                "complex_reasoning",
                (
                    "If I overpay my mortgage by two hundred a month, roughly how much interest would I save over "
                    "ten years, and is that better than putting it in savings at four percent?",
                    "Overpaying saves interest at your mortgage rate, while savings earn four percent before tax, "
                    "so if your mortgage rate is above about five percent overpaying usually wins, as long as you "
                    "keep an emergency buffer. An adviser can model the exact numbers with you.",
                ),
                (
                    "Should I move my emergency fund into a one-year fixed deposit, or keep it in easy access given "
                    "I might need some of it in six months?",
                    "A fixed deposit pays more but locks the money for the year; if you might need part of it, "
                    "splitting it between the two is a common compromise.",
                ),
                (
                    "We're choosing between a two-year and a five-year fixed rate; how do I think about which is "
                    "better if rates might drop?",
                    "A two-year fix lets you benefit sooner if rates fall, but you'd pay another arrangement fee and "
                    "risk higher rates in two years; the five-year fix buys certainty. It depends on how long you "
                    "plan to stay and how much a payment rise would hurt.",
                ),
            ),
            identity=(FULL_NAME,),
            core=(
                beat(
                    "scheduling",
                    caller=(
                        "Can I book a call with an adviser about it?",
                        "Okay, could someone go through the numbers with me?",
                    ),
                    replies=("I've booked a call with a mortgage adviser on {day} at {time}.",),
                ),
            ),
        ),
        Scenario(
            "fee-complaint",
            10,
            openers=(
                beat(
                    "complaint",
                    caller=(
                        "You charged me a thirty five dollar overdraft fee for being two dollars over.",
                        "I've been a customer for fifteen years and you're charging me monthly fees now?",
                        "My transfer took four days and my rent was late because of it.",
                    ),
                    replies=("I'm sorry, let me look at that fee.", "I understand how frustrating that is."),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, SSN_LAST4),
            core=(
                beat(
                    "complaint",
                    caller=(
                        "I want it refunded.",
                        "That's just not fair.",
                        "Honestly I'm thinking of closing my account.",
                    ),
                    replies=(
                        "I've refunded the fee as a one-off goodwill gesture.",
                        "I've logged a complaint, and you'll hear back within 5 business days.",
                    ),
                ),
            ),
        ),
        Scenario(
            "bereavement-or-attorney",
            3,
            openers=answered(
                "other",
                (
                    "My father passed away last month and I'm the executor of his estate.",
                    "I'm very sorry for your loss. Our bereavement team will guide you through everything.",
                ),
                (
                    "I have power of attorney for my mum and I need to manage her account.",
                    "I can help you get started; our specialist team registers powers of attorney.",
                ),
                (
                    "I'm going through a divorce and my lawyer says I need statements for the last two years.",
                    "I can order those statements for you; they'll be posted within five business days.",
                ),
                risks=("legal",),
            ),
            identity=(FULL_NAME, PHONE),
            core=(
                beat(
                    "faq",
                    caller=(
                        "What documents do you need from me?",
                        "Can I upload the paperwork online?",
                    ),
                    replies=(
                        "We'll need the death certificate and the grant of probate or letters of administration.",
                        "Yes, the specialist will send you a secure upload link today.",
                    ),
                    risks=("legal",),
                ),
            ),
        ),
        Scenario(
            "open-account",
            8,
            openers=(
                beat(
                    "transaction",
                    caller=(
                        "I'd like to open a savings account.",
                        "Can I open a checking account for my teenage son?",
                    ),
                    replies=("Great, I can start that application now.",),
                ),
            ),
            identity=(FULL_NAME, DATE_OF_BIRTH, ADDRESS),
            core=(
                beat(
                    "data_collection",
                    caller=("My social is {ssn}.", "It's {ssn}."),
                    replies=("Thank you, the application is submitted and you'll hear back within a day.",),
                    prompts=("For the application I need your full social security number.",),
                    risks=("pii",),
                ),
            ),
        ),
        Scenario("faq-only", 20, openers=BANK_FAQS, identity=(), core=(), detours=2.5),
    ),
    faqs=BANK_FAQS,
    ivr_states=("identifying", "verified"),
)

DOMAINS = (CLINIC, SAAS, LOGISTICS, BANK)
