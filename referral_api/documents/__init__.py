"""Documents: the signed consent form, passport copies, police reports and photos of a referral or case.

Each file is sealed with its parent record's data key (AES-256-GCM in 64 KiB chunks, sealing.py) and
kept outside the database in a document store (storage.py), so crypto-shredding the record's key makes
its documents unreadable too. Images lose their metadata on upload (content.py); PDFs are stored as
sent. Who sees which document: the parent's view, and for personal kinds the person's consent
(visibility.py). This part sits above referrals/ and cases/ (it reads both), below reports/.
"""
