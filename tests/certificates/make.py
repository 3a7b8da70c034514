#!/usr/bin/env python3
"""Makes the test certificates (DER) that tests/certificates.rs and src/tls/certificate.rs
read. Keys are thrown away: only the certificates are kept. Run from this directory:
python3 make.py (needs the `cryptography` package)."""

import datetime as dt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def name(cn, org=None):
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def cert(subject, issuer, key, signer, aki_key, start, end, sans=None, ca=False):
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key.public_key()),
            critical=False,
        )
    )
    if sans:
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return b.sign(signer, hashes.SHA256())


def utc(y, m, d):
    return dt.datetime(y, m, d, tzinfo=dt.timezone.utc)


def main():
    root, inter, leaf, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    lab_root, lab_inter = name("Lab Root"), name("Lab Intermediate")
    leaf_name = name("api.example.test", "Lab")
    out = {
        # Issued by the root, as an intermediate is.
        "intermediate.der": cert(lab_inter, lab_root, inter, root, root,
                                 utc(2025, 1, 1), utc(2035, 1, 1), ca=True),
        # Expired on 2024-01-01; covers *.example.test only.
        "expired_leaf.der": cert(leaf_name, lab_inter, leaf, inter, inter,
                                 utc(2023, 1, 1), utc(2024, 1, 1), sans=["*.example.test"]),
        # Valid 2025 to 2035 for api.example.test and *.example.test.
        "good_leaf.der": cert(leaf_name, lab_inter, leaf, inter, inter,
                              utc(2025, 1, 1), utc(2035, 1, 1),
                              sans=["api.example.test", "*.example.test"]),
        # Self-issued (subject == issuer) but signed by another key: not self-signed.
        "self_issued_other_key.der": cert(lab_inter, lab_inter, inter, other, other,
                                          utc(2025, 1, 1), utc(2035, 1, 1), ca=True),
    }
    for path, c in out.items():
        with open(path, "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.DER))


main()
