// Cross-checks ossgate approval tokens with an independent PASETO
// implementation (npm "paseto"). Used by provenance_interop_test.
//
//   node paseto_interop.mjs verify TOKEN K4_PUBLIC_PASERK WORKER_ID ISSUER
//       verifies signature, implicit assertion (worker id), audience, issuer
//       and times; prints the claims as JSON. Exit 0 valid, 1 invalid.
//   node paseto_interop.mjs sign K4_SECRET_PASERK WORKER_ID CLAIMS_JSON FOOTER
//       signs CLAIMS_JSON with FOOTER and the worker id as implicit
//       assertion; prints the token.
import { PublicProtocol } from 'paseto'
import {
  ImportPublicKeyFactory,
  ImportSecretKeyFactory,
  SignFactory,
  VerifyFactory,
} from 'paseto/v4/public'

const v4 = new PublicProtocol(ImportPublicKeyFactory, ImportSecretKeyFactory, SignFactory, VerifyFactory)
const enc = new TextEncoder()
const [mode, ...args] = process.argv.slice(2)

try {
  if (mode === 'verify') {
    const [token, paserk, worker, issuer] = args
    const key = await v4.ImportPublicKey(paserk)
    const { claims, footer } = await v4.Verify(key, token, {
      audience: worker,
      issuer,
      implicitAssertion: enc.encode(worker),
      clockTolerance: 30,
    })
    process.stdout.write(JSON.stringify({ claims, footer: new TextDecoder().decode(footer) }) + '\n')
  } else if (mode === 'sign') {
    const [paserk, worker, claimsJson, footer] = args
    const key = await v4.ImportSecretKey(paserk)
    const token = await v4.Sign(key, JSON.parse(claimsJson), {
      footer: enc.encode(footer),
      implicitAssertion: enc.encode(worker),
      addIssuedAt: false,
    })
    process.stdout.write(token + '\n')
  } else {
    throw new Error('usage: verify TOKEN PASERK WORKER ISSUER | sign PASERK WORKER CLAIMS FOOTER')
  }
} catch (err) {
  process.stderr.write(`paseto_interop: ${err.code ?? ''} ${err.message}\n`)
  process.exit(1)
}
