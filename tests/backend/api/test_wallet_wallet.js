// A Wallet Standard wallet for the browser test: Ed25519 in WebCrypto with a key the test hands in.
// Registers itself the way Phantom, Solflare and Backpack do (wallet-standard:register-wallet).
(function (seedB64, publicB64, address) {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const seed = bytes(seedB64), publicKey = bytes(publicB64);
  const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                                0x04, 0x20, ...seed]);
  const key = crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  const sign = async (message) => new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, await key, message));
  const account = { address, publicKey, chains: ["solana:localnet"],
                    features: ["solana:signIn", "solana:signMessage", "solana:signTransaction"] };
  // @solana/wallet-standard-util createSignInMessageText
  function signInText(input) {
    let text = `${input.domain} wants you to sign in with your Solana account:\n${input.address}`;
    if (input.statement) text += `\n\n${input.statement}`;
    const fields = [];
    if (input.uri) fields.push(`URI: ${input.uri}`);
    if (input.version) fields.push(`Version: ${input.version}`);
    if (input.chainId) fields.push(`Chain ID: ${input.chainId}`);
    if (input.nonce) fields.push(`Nonce: ${input.nonce}`);
    if (input.issuedAt) fields.push(`Issued At: ${input.issuedAt}`);
    if (input.expirationTime) fields.push(`Expiration Time: ${input.expirationTime}`);
    if (fields.length) text += `\n\n${fields.join("\n")}`;
    return text;
  }
  window.__testWallet = { signed: [] };
  const wallet = {
    version: "1.0.0", name: "Test Wallet", icon: "data:image/svg+xml;base64,PHN2Zy8+", chains: ["solana:localnet"],
    accounts: [account],
    features: {
      "standard:connect": { version: "1.0.0", connect: async () => ({ accounts: [account] }) },
      "solana:signIn": { version: "1.0.0", signIn: (...inputs) => Promise.all(inputs.map(async (input) => {
        const signedMessage = new TextEncoder().encode(signInText({ ...input, address }));
        return { account, signedMessage, signature: await sign(signedMessage) };
      })) },
      "solana:signMessage": { version: "1.0.0", signMessage: (...inputs) => Promise.all(inputs.map(async (input) =>
        ({ signedMessage: input.message, signature: await sign(input.message) }))) },
      "solana:signTransaction": { version: "1.0.0", supportedTransactionVersions: ["legacy"],
        signTransaction: (...inputs) => Promise.all(inputs.map(async ({ transaction }) => {
          const tx = new Uint8Array(transaction);
          const signatures = tx[0];                       // short-vec, < 128
          const message = tx.slice(1 + 64 * signatures);
          const required = message[0];
          let index = -1;
          for (let i = 0; i < required; i++) {
            const k = message.slice(4 + 32 * i, 36 + 32 * i);   // header (3) + key count (1, < 128)
            if (k.every((b, j) => b === publicKey[j])) index = i;
          }
          if (index < 0) throw new Error("this wallet is not a signer of that transaction");
          tx.set(await sign(message), 1 + 64 * index);
          window.__testWallet.signed.push(index);
          return { signedTransaction: tx };
        })) },
    },
  };
  window.dispatchEvent(new CustomEvent("wallet-standard:register-wallet", { detail: ({ register }) => register(wallet) }));
})(arguments[0], arguments[1], arguments[2]);
