// A real OpenID provider for the API tests: the npm package oidc-provider (an OpenID Certified
// implementation), on 127.0.0.1 at a free port, issuing JWT access tokens by the client-credentials grant.
//
// Clients are fixed: `<kind>-<n>` for kind in lab, doctor, admin, patient, nobody and n in 1..=20, secret
// `medbook-test-client-secret`. A client's token is the identity `sub` = its client id, with the roles of its
// kind under `realm_access.roles` (Keycloak's shape): lab-staff, physician, medbook-admin, patient, or only
// offline_access (maps to no medbook role); a patient's token also carries a verified e-mail address,
// `<client id>@patients.example`. The resource indicator chooses the signing algorithm:
// `resource=https://medbook.test/<RS256|PS256|ES256|EdDSA>`; the audience is `medbook-api`.
//
// Prints {"issuer": "..."} on one line when it listens; exits when its stdin closes (the test binary ended).
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const key = (type, options, kid) => ({
  ...crypto.generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  kid,
  use: 'sig',
});
const jwks = {
  keys: [
    key('rsa', { modulusLength: 2048 }, 'rsa-1'),
    key('ec', { namedCurve: 'P-256' }, 'ec-1'),
    key('ed25519', {}, 'ed-1'),
  ],
};
const roles = { lab: ['lab-staff'], doctor: ['physician'], admin: ['medbook-admin'], patient: ['patient'], nobody: ['offline_access'] };
const clients = Object.keys(roles).flatMap((kind) =>
  Array.from({ length: 20 }, (_, i) => ({
    client_id: `${kind}-${i + 1}`,
    client_secret: 'medbook-test-client-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'medbook',
  })),
);
const algorithms = ['RS256', 'PS256', 'ES256', 'EdDSA'];

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    scopes: ['openid', 'medbook'],
    jwks,
    enabledJWA: { clientAuthSigningAlgValues: ['HS256'], idTokenSigningAlgValues: algorithms },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'https://medbook.test/ES256',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const alg = resource.split('/').pop();
          if (!algorithms.includes(alg)) throw new Error(`no resource ${resource}`);
          return {
            scope: 'medbook',
            audience: 'medbook-api',
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const kind = token.clientId.split('-')[0];
      const claims = { realm_access: { roles: roles[kind] ?? [] } };
      if (kind === 'patient') {
        claims.email = `${token.clientId}@patients.example`;
        claims.email_verified = true;
      }
      return claims;
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
