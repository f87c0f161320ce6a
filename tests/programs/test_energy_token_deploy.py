"""The three programs deployed through the BPF Upgradeable Loader (buffer, write, deploy), as on a
cluster, then used end to end: the loader's ProgramData names the deployer as upgrade authority, which
is what gates each program's one-time initialisation."""

from __future__ import annotations

import struct

import pytest
from nacl.signing import SigningKey
from solders.keypair import Keypair

from gridtokenx.reading import Reading, sign
from programs.certificates import client as certs
from programs.client import LiteSVMChain, deploy_upgradeable, program_so
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import bootstrap, register_active_meter
from programs.registry import client as registry

pytestmark = pytest.mark.chain


async def test_deploy_all_three_through_the_loader_and_settle() -> None:
    chain = LiteSVMChain()
    admin, owner, intruder = Keypair(), Keypair(), Keypair()
    for key in (admin, owner, intruder):
        await chain.fund(key.pubkey(), 50 * 10**9)
    ids = {}
    for name in ("registry", "energy_token", "certificates"):
        deployed = await deploy_upgradeable(chain, program_so(name), Keypair(), admin)
        assert deployed.authority == admin.pubkey()
        ids[name] = deployed.program_id
    reg, ene, cer = ids["registry"], ids["energy_token"], ids["certificates"]

    # Only the upgrade authority may initialise.
    refused = await chain.send_transaction([registry.initialize(reg, intruder.pubkey(), intruder.pubkey())],
                                           [intruder])
    assert refused.failure is not None and refused.failure.error == "IncorrectAuthority"

    grid = await bootstrap(chain, admin, reg, ene)
    (await chain.send_transaction([certs.initialize(cer, admin.pubkey(), admin.pubkey(), reg)],
                                  [admin])).raise_for_failure()
    meter_key = SigningKey(b"deployed-meter".ljust(32, b"\0"))
    meter = await register_active_meter(chain, grid, admin, owner, "SDM120-7", bytes(meter_key.verify_key))
    for seq, import_wh, export_wh in ((1, 250, 250), (2, 250, 1_250)):  # the baseline, then 1 kWh exported
        signed = sign(Reading("SDM120-7", seq, 1_764_072_000_000 + seq, import_wh, export_wh), meter_key)
        result = await chain.send_transaction(
            energy.settle_transaction(ene, reg, grid.mint, owner.pubkey(), signed, bytes(meter_key.verify_key)),
            [owner])
        result.raise_for_failure()
    account = await chain.get_account(meter.grid_account)
    assert account is not None and struct.unpack_from("<Q", bytes(account.data), 64)[0] == 1_000 * 10**6

    (await chain.send_transaction([certs.issue(cer, owner.pubkey(), meter.address, 0, 1_000)],
                                  [owner])).raise_for_failure()
    (await chain.send_transaction([certs.validate(cer, admin.pubkey(), certs.certificate_address(
        cer, meter.address, 0)[0])], [admin])).raise_for_failure()
    found = await chain.get_account(certs.certificate_address(cer, meter.address, 0)[0])
    assert found is not None
    cert = certs.Certificate.decode(bytes(found.data))
    assert (cert.status, cert.from_wh, cert.to_wh) == (certs.CertificateStatus.VALID, 0, 1_000)
