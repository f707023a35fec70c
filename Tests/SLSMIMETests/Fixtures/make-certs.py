#!/usr/bin/env python3
"""Makes a throwaway CA and recipient certificates in every state the S/MIME checks
care about. Run by the tests with an output directory; uses the `cryptography`
package because OpenSSL 3.0's x509 command cannot backdate a certificate."""
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)

def key(kind):
    return rsa.generate_private_key(65537, 3072) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())

def save(name, cert, k=None):
    open(f"{out}/{name}.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    if k is not None:
        open(f"{out}/{name}.key", "wb").write(k.private_bytes(serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

def ca(name):
    k = key("ec")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - day).not_valid_after(now + 3650 * day)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
         .sign(k, hashes.SHA256()))
    return c, k

def leaf(name, email, issuer, issuer_key, kind="rsa", before=None, after=None, eku=True, usage=None, san=None):
    k = key(kind)
    if usage is None:
        usage = "keyEncipherment" if kind == "rsa" else "keyAgreement"
    ku = dict(digital_signature=True, content_commitment=False, key_encipherment=usage == "keyEncipherment",
              data_encipherment=False, key_agreement=usage == "keyAgreement", key_cert_sign=False, crl_sign=False,
              encipher_only=False, decipher_only=False)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(issuer.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(before or now - day).not_valid_after(after or now + 365 * day)
         .add_extension(x509.KeyUsage(**ku), critical=True)
         .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(san or email)]), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    c = b.sign(issuer_key, hashes.SHA256())
    save(name, c, k)

root, root_key = ca("sl test CA")
save("ca", root)
other, other_key = ca("someone else's CA")
leaf("rsa", "rsa@example.org", root, root_key, "rsa")
leaf("ec", "ec@example.org", root, root_key, "ec")
leaf("expired", "expired@example.org", root, root_key, "ec", before=now - 400 * day, after=now - 30 * day)
leaf("future", "future@example.org", root, root_key, "ec", before=now + 30 * day, after=now + 400 * day)
leaf("wrongaddr", "wrongaddr@example.org", root, root_key, "ec", san="someone@else.example")
leaf("untrusted", "untrusted@example.org", other, other_key, "ec")
leaf("noeku", "noeku@example.org", root, root_key, "ec", eku=False)
leaf("rsasignonly", "rsasignonly@example.org", root, root_key, "rsa", usage="digitalSignature")
leaf("ecencipher", "ecencipher@example.org", root, root_key, "ec", usage="keyEncipherment")
