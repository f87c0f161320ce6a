"""The certificates program in LiteSVM: issue / validate / retire / revoke / expire / transfer, and each
refusal by error name. Certificates cover settled net generation that the energy-token program recorded
in the registry, so each test first settles a signed reading through the real programs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from program_testkit import funded, refused_by, set_unix_time, without_signature
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from gridtokenx.reading import Reading, sign
from programs.certificates import client as certs
from programs.certificates.client import CERTIFICATES_ERRORS, CertificateStatus
from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import (
    GridDeployment,
    RegisteredMeter,
    bootstrap,
    register_active_meter,
)
from programs.registry import client as registry

pytestmark = pytest.mark.chain

REGISTRY_ID = Keypair.from_seed(bytes([0x61]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0x62]) * 32).pubkey()
CERTS_ID = Keypair.from_seed(bytes([0x63]) * 32).pubkey()
NOW = 1_764_072_000  # 2025-11-25T12:00:00Z
YEAR = certs.ONE_YEAR_SECONDS


_refused = refused_by(CERTIFICATES_ERRORS)


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair
    governance: Keypair
    owner: Keypair
    grid: GridDeployment
    meter: RegisteredMeter

    async def send(self, ix: Instruction, *signers: Keypair) -> TxResult:
        return await self.chain.send_transaction([ix], list(signers))

    async def issue(self, index: int, to_wh: int, **kw: object) -> TxResult:
        ix = certs.issue(CERTS_ID, self.owner.pubkey(), self.meter.address, index, to_wh, **kw)  # type: ignore[arg-type]
        return await self.send(ix, self.owner)

    def cert(self, index: int, meter: Pubkey | None = None) -> Pubkey:
        return certs.certificate_address(CERTS_ID, meter or self.meter.address, index)[0]

    async def certificate(self, index: int) -> certs.Certificate:
        found = await self.chain.get_account(self.cert(index))
        assert found is not None
        return certs.Certificate.decode(bytes(found.data))

    async def mark(self) -> certs.CertMark:
        found = await self.chain.get_account(certs.mark_address(CERTS_ID, self.meter.address)[0])
        assert found is not None
        return certs.CertMark.decode(bytes(found.data))


# A meter joins with years on its counters, more imported than exported: its baseline net is -70,000 Wh.
LIFETIME_IMPORT_WH, LIFETIME_EXPORT_WH = 250_000, 180_000


async def _settle(chain: LiteSVMChain, grid: GridDeployment, owner: Keypair, key: SigningKey, reading: Reading) -> None:
    signed = sign(reading, key)
    ixs = energy.settle_transaction(ENERGY_ID, REGISTRY_ID, grid.mint, owner.pubkey(), signed, bytes(key.verify_key))
    (await chain.send_transaction(ixs, [owner])).raise_for_failure()


async def _settled_meter(chain: LiteSVMChain, grid: GridDeployment, admin: Keypair, owner: Keypair, meter_id: str,
                         import_wh: int, export_wh: int) -> RegisteredMeter:
    """A meter whose baseline (its first reading: the lifetime counters) is settled, then a reading with
    ``import_wh`` / ``export_wh`` more: it has ``export_wh - import_wh`` settled above its baseline."""
    key = SigningKey(meter_id.encode().ljust(32, b"k"))
    meter = await register_active_meter(chain, grid, admin, owner, meter_id, bytes(key.verify_key))
    await _settle(chain, grid, owner, key, Reading(meter_id, 1, NOW * 1000, LIFETIME_IMPORT_WH, LIFETIME_EXPORT_WH))
    await _settle(chain, grid, owner, key, Reading(meter_id, 2, NOW * 1000 + 60_000, LIFETIME_IMPORT_WH + import_wh,
                                                   LIFETIME_EXPORT_WH + export_wh))
    return meter


@pytest.fixture
async def world() -> World:
    chain = LiteSVMChain()
    set_unix_time(chain, NOW)
    admin, governance, owner = await funded(chain), await funded(chain), await funded(chain)
    for program, name in ((REGISTRY_ID, "registry"), (ENERGY_ID, "energy_token"), (CERTS_ID, "certificates")):
        add_program_with_authority(chain, program, program_so(name), admin.pubkey())
    grid = await bootstrap(chain, admin, REGISTRY_ID, ENERGY_ID)
    ix = certs.initialize(CERTS_ID, admin.pubkey(), governance.pubkey(), REGISTRY_ID)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    meter = await _settled_meter(chain, grid, admin, owner, "SDM630-000042", 1_000, 5_000)  # 4,000 Wh settled
    return World(chain, admin, governance, owner, grid, meter)


# --- Initialize ---------------------------------------------------------------------------------------

async def test_initialize_stores_governance_registry_and_validity(world: World) -> None:
    found = await world.chain.get_account(certs.config_address(CERTS_ID)[0])
    assert found is not None and found.owner == CERTS_ID
    assert certs.CertConfig.decode(bytes(found.data)) == certs.CertConfig(world.governance.pubkey(), REGISTRY_ID,
                                                                          YEAR)
    again = certs.initialize(CERTS_ID, world.admin.pubkey(), world.admin.pubkey(), REGISTRY_ID)
    _refused(await world.send(again, world.admin), "AccountAlreadyInitialized")


async def test_initialize_refusals() -> None:
    chain = LiteSVMChain()
    admin, intruder = await funded(chain), await funded(chain)
    add_program_with_authority(chain, CERTS_ID, program_so("certificates"), admin.pubkey())
    ix = certs.initialize(CERTS_ID, intruder.pubkey(), intruder.pubkey(), REGISTRY_ID)
    _refused(await chain.send_transaction([ix], [intruder]), "IncorrectAuthority")
    ix = certs.initialize(CERTS_ID, admin.pubkey(), admin.pubkey(), REGISTRY_ID, validity_seconds=0)
    _refused(await chain.send_transaction([ix], [admin]), "InvalidValidity")


# --- Issue --------------------------------------------------------------------------------------------

async def test_issue_covers_consecutive_ranges_of_settled_generation(world: World) -> None:
    result = await world.issue(0, 3_000)
    result.raise_for_failure()
    first = await world.certificate(0)
    assert (first.status, first.from_wh, first.to_wh, first.index) == (CertificateStatus.PENDING, 0, 3_000, 0)
    assert (first.owner, first.meter) == (world.owner.pubkey(), world.meter.address)
    assert (first.issued_at, first.expires_at, first.validated_at) == (NOW, NOW + YEAR, 0)
    assert certs.decode_events(result, CERTS_ID) == [certs.CertificateIssued(
        world.cert(0), world.meter.address, world.owner.pubkey(), 0, 0, 3_000, CertificateStatus.PENDING, NOW,
        NOW + YEAR, "SDM630-000042")]
    (await world.issue(1, 4_000)).raise_for_failure()
    second = await world.certificate(1)
    assert (second.from_wh, second.to_wh) == (3_000, 4_000)
    assert await world.mark() == certs.CertMark(world.meter.address, 4_000, 2)


async def test_double_certification_is_refused(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    _refused(await world.issue(1, 3_000), "AlreadyCertified")
    _refused(await world.issue(1, 2_000), "AlreadyCertified")
    # The old index again: certificates live only at the mark's next index, so none is issued over it.
    _refused(await world.issue(0, 3_500), "InvalidSeeds")
    # Even after the first certificate is revoked, its generation stays certified.
    (await world.send(certs.revoke(CERTS_ID, world.governance.pubkey(), world.cert(0), 7),
                      world.governance)).raise_for_failure()
    _refused(await world.issue(1, 3_000), "AlreadyCertified")
    assert (await world.mark()).certified_up_to_wh == 3_000


async def test_issue_beyond_settled_generation_is_refused(world: World) -> None:
    _refused(await world.issue(0, 4_001), "ExceedsSettledGeneration")
    # A consumer's meter has settled nothing since its baseline (it imported more).
    consumer = await funded(world.chain)
    meter = await _settled_meter(world.chain, world.grid, world.admin, consumer, "CONSUMER-1", 9_000, 1_000)
    ix = certs.issue(CERTS_ID, consumer.pubkey(), meter.address, 0, 1)
    _refused(await world.send(ix, consumer), "ExceedsSettledGeneration")


async def test_the_baseline_is_never_certifiable(world: World) -> None:
    # A meter that joined with 50,000 Wh of lifetime export and has settled only its baseline: its settled
    # mark is 50,000 but none of it was generated under the registry.
    key = SigningKey(b"B" * 32)
    meter = await register_active_meter(world.chain, world.grid, world.admin, world.owner, "BASELINE-ONLY",
                                        bytes(key.verify_key))
    await _settle(world.chain, world.grid, world.owner, key, Reading("BASELINE-ONLY", 1, NOW * 1000, 0, 50_000))
    found = await world.chain.get_account(meter.address)
    assert found is not None
    state = registry.Meter.decode(bytes(found.data))
    assert (state.settled_net_generation_wh, state.baseline_net_generation_wh) == (50_000, 50_000)
    ix = certs.issue(CERTS_ID, world.owner.pubkey(), meter.address, 0, 1)
    _refused(await world.send(ix, world.owner), "ExceedsSettledGeneration")
    # The fixture's meter: a consumer-heavy lifetime (baseline -70,000 Wh), 4,000 Wh generated since. Its
    # lifetime net is still negative, yet those 4,000 Wh are certifiable; the mark starts at the baseline (0).
    found = await world.chain.get_account(world.meter.address)
    assert found is not None
    state = registry.Meter.decode(bytes(found.data))
    assert (state.baseline_net_generation_wh, state.settled_net_generation_wh) == (-70_000, -66_000)
    assert state.generation_since_baseline_wh == 4_000
    (await world.issue(0, 4_000)).raise_for_failure()
    assert (await world.certificate(0)).from_wh == 0


async def test_issue_refusals_for_signer_owner_and_accounts(world: World) -> None:
    intruder = await funded(world.chain)
    ix = certs.issue(CERTS_ID, intruder.pubkey(), world.meter.address, 0, 1_000)
    _refused(await world.send(ix, intruder), "NotMeterOwner")
    ix = certs.issue(CERTS_ID, world.owner.pubkey(), world.meter.address, 0, 1_000, owner_signs=False)
    _refused(await world.send(ix, intruder), "MissingRequiredSignature")
    # Forged PDAs: a certificate at another index than the mark's next one, a non-PDA mark.
    _refused(await world.issue(5, 1_000, certificate=world.cert(5)), "InvalidSeeds")
    _refused(await world.issue(0, 1_000, mark=Pubkey.new_unique()), "InvalidSeeds")
    # A meter copy owned by a look-alike registry, claiming far more settled generation.
    found = await world.chain.get_account(world.meter.address)
    assert found is not None
    data = bytearray(found.data)
    data[120:128] = (10**12).to_bytes(8, "little")
    forged = Pubkey.new_unique()
    world.chain.svm.set_account(forged, Account(found.lamports, bytes(data), Pubkey.new_unique(), False, 0))
    ix = certs.issue(CERTS_ID, world.owner.pubkey(), forged, 0, 10**12)
    _refused(await world.send(ix, world.owner), "WrongRegistry")
    # The mark of one meter presented for another meter of the same owner.
    (await world.issue(0, 1_000)).raise_for_failure()
    other = await _settled_meter(world.chain, world.grid, world.admin, world.owner, "SDM630-000043", 0, 500)
    ix = certs.issue(CERTS_ID, world.owner.pubkey(), other.address, 0, 500,
                     mark=certs.mark_address(CERTS_ID, world.meter.address)[0])
    _refused(await world.send(ix, world.owner), "MarkMeterMismatch")


async def test_expiry_overflow_is_refused() -> None:
    chain = LiteSVMChain()
    set_unix_time(chain, NOW)
    admin, owner = await funded(chain), await funded(chain)
    for program, name in ((REGISTRY_ID, "registry"), (ENERGY_ID, "energy_token"), (CERTS_ID, "certificates")):
        add_program_with_authority(chain, program, program_so(name), admin.pubkey())
    grid = await bootstrap(chain, admin, REGISTRY_ID, ENERGY_ID)
    ix = certs.initialize(CERTS_ID, admin.pubkey(), admin.pubkey(), REGISTRY_ID, validity_seconds=2**63 - 1)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    meter = await _settled_meter(chain, grid, admin, owner, "M-OVERFLOW", 0, 100)
    ix = certs.issue(CERTS_ID, owner.pubkey(), meter.address, 0, 100)
    _refused(await chain.send_transaction([ix], [owner]), "ArithmeticOverflow")


# --- Validate, Retire, Transfer -----------------------------------------------------------------------

async def test_validate_then_retire(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    set_unix_time(world.chain, NOW + 60)
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    cert = await world.certificate(0)
    assert (cert.status, cert.validated_at) == (CertificateStatus.VALID, NOW + 60)
    result = await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner)
    result.raise_for_failure()
    assert certs.decode_events(result, CERTS_ID) == [certs.CertificateRetired(
        world.cert(0), world.meter.address, world.owner.pubkey(), 0, 0, 3_000, CertificateStatus.RETIRED, NOW + 60)]
    cert = await world.certificate(0)
    assert (cert.status, cert.closed_at) == (CertificateStatus.RETIRED, NOW + 60)
    # Retired is final.
    _refused(await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "InvalidState")
    _refused(await world.send(certs.revoke(CERTS_ID, world.governance.pubkey(), world.cert(0), 1),
                              world.governance), "InvalidState")


async def test_validate_refusals(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    _refused(await world.send(certs.validate(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "NotGovernance")
    ix = certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0), governance_signs=False)
    _refused(await world.send(ix, world.owner), "MissingRequiredSignature")
    # A config copy naming the owner as governance, owned by another program.
    config = await world.chain.get_account(certs.config_address(CERTS_ID)[0])
    assert config is not None
    data = bytearray(config.data)
    data[8:40] = bytes(world.owner.pubkey())
    fake = Pubkey.new_unique()
    world.chain.svm.set_account(fake, Account(config.lamports, bytes(data), Pubkey.new_unique(), False, 0))
    ix = certs.validate(CERTS_ID, world.owner.pubkey(), world.cert(0), config=fake)
    _refused(await world.send(ix, world.owner), "InvalidAccountOwner")
    # The mark in the certificate slot: a certificates account of another type.
    ix = certs.validate(CERTS_ID, world.governance.pubkey(), certs.mark_address(CERTS_ID, world.meter.address)[0])
    _refused(await world.send(ix, world.governance), "AccountWrongSize")
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    _refused(await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                              world.governance), "InvalidState")


async def test_retire_refusals(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    _refused(await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "InvalidState")  # still pending
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    intruder = await funded(world.chain)
    _refused(await world.send(certs.retire(CERTS_ID, intruder.pubkey(), world.cert(0)), intruder),
             "NotCertificateOwner")
    ix = certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0), holder_signs=False)
    _refused(await world.send(ix, intruder), "MissingRequiredSignature")
    set_unix_time(world.chain, NOW + YEAR)
    _refused(await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "CertificateExpired")


async def test_transfer_hands_the_certificate_to_a_buyer(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    buyer = await funded(world.chain)
    ix = certs.transfer(CERTS_ID, world.owner.pubkey(), world.cert(0), buyer.pubkey())
    _refused(await world.send(ix, world.owner), "InvalidState")  # pending certificates are not traded
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    _refused(await world.send(certs.transfer(CERTS_ID, buyer.pubkey(), world.cert(0), buyer.pubkey()), buyer),
             "NotCertificateOwner")
    (await world.send(ix, world.owner)).raise_for_failure()
    assert (await world.certificate(0)).owner == buyer.pubkey()
    _refused(await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "NotCertificateOwner")
    (await world.send(certs.retire(CERTS_ID, buyer.pubkey(), world.cert(0)), buyer)).raise_for_failure()
    assert (await world.certificate(0)).status == CertificateStatus.RETIRED


# --- Revoke, Expire -----------------------------------------------------------------------------------

async def test_revoke_with_a_reason(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    _refused(await world.send(certs.revoke(CERTS_ID, world.owner.pubkey(), world.cert(0), 3), world.owner),
             "NotGovernance")
    _refused(await world.send(certs.revoke(CERTS_ID, world.governance.pubkey(), world.cert(0), 0),
                              world.governance), "InvalidReason")
    (await world.send(certs.revoke(CERTS_ID, world.governance.pubkey(), world.cert(0), 3),
                      world.governance)).raise_for_failure()
    cert = await world.certificate(0)
    assert (cert.status, cert.revoke_reason, cert.closed_at) == (CertificateStatus.REVOKED, 3, NOW)
    _refused(await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                              world.governance), "InvalidState")


async def test_every_signed_instruction_refuses_a_missing_signature(world: World) -> None:
    """Each instruction's signer listed without its signature (a third party pays and signs instead):
    refused by name, for the six instructions that have a signer (Expire has none)."""
    (await world.issue(0, 3_000)).raise_for_failure()
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    admin, governance, owner = world.admin.pubkey(), world.governance.pubkey(), world.owner.pubkey()
    payer = await funded(world.chain)
    signed = {
        "initialize": certs.initialize(CERTS_ID, admin, governance, REGISTRY_ID),
        "issue": certs.issue(CERTS_ID, owner, world.meter.address, 1, 4_000),
        "validate": certs.validate(CERTS_ID, governance, world.cert(0)),
        "retire": certs.retire(CERTS_ID, owner, world.cert(0)),
        "revoke": certs.revoke(CERTS_ID, governance, world.cert(0), 1),
        "transfer": certs.transfer(CERTS_ID, owner, world.cert(0), payer.pubkey()),
    }
    for name, ix in signed.items():
        result = await world.send(without_signature(ix), payer)
        assert result.failure is not None, name
        assert CERTIFICATES_ERRORS.name(result.failure) == "MissingRequiredSignature", (name, result.logs[-4:])
    cert = await world.certificate(0)
    assert (cert.status, cert.owner) == (CertificateStatus.VALID, world.owner.pubkey())
    assert (await world.mark()).next_index == 1


async def test_expire_after_one_year_by_anyone(world: World) -> None:
    (await world.issue(0, 3_000)).raise_for_failure()
    (await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(0)),
                      world.governance)).raise_for_failure()
    (await world.issue(1, 4_000)).raise_for_failure()
    anyone = await funded(world.chain)
    set_unix_time(world.chain, NOW + YEAR - 1)
    _refused(await world.send(certs.expire(CERTS_ID, world.cert(0)), anyone), "NotYetExpired")
    set_unix_time(world.chain, NOW + YEAR)
    # A pending certificate can no longer be validated once its validity has ended.
    _refused(await world.send(certs.validate(CERTS_ID, world.governance.pubkey(), world.cert(1)),
                              world.governance), "CertificateExpired")
    for index in (0, 1):
        (await world.send(certs.expire(CERTS_ID, world.cert(index)), anyone)).raise_for_failure()
        cert = await world.certificate(index)
        assert (cert.status, cert.closed_at) == (CertificateStatus.EXPIRED, NOW + YEAR)
    _refused(await world.send(certs.expire(CERTS_ID, world.cert(0)), anyone), "InvalidState")
    _refused(await world.send(certs.retire(CERTS_ID, world.owner.pubkey(), world.cert(0)), world.owner),
             "InvalidState")


async def test_unknown_instruction(world: World) -> None:
    _refused(await world.send(Instruction(CERTS_ID, bytes([42]), []), world.owner), "UnknownInstruction")
    ix = certs.issue(CERTS_ID, world.owner.pubkey(), world.meter.address, 0, 1)
    _refused(await world.send(Instruction(CERTS_ID, bytes(ix.data)[:5], ix.accounts), world.owner),
             "InvalidInstructionData")


def test_error_table_mirrors_error_h() -> None:
    # The Python names are the C enum names in CamelCase, with the same numbers.
    source = (Path(__file__).resolve().parents[2] / "programs" / "certificates" / "src" / "error.h").read_text()
    c_errors = {int(n): "".join(w.capitalize() for w in name.split("_"))
                for name, n in re.findall(r"CERT_ERROR_(\w+) = (\d+)", source)}
    assert c_errors == CERTIFICATES_ERRORS.codes
