// Drives an AIC tenant of pingone-aic-sim with frodo-lib and frodo-cli, clients written for the
// real service by others, through their own functions: service-account login, ESV variables and
// secrets with versions, the ESV count, restart and wait, the worker service, secret mappings
// and the promotion lock state. A step passes only when frodo gets what AIC answers.
//
//   node check.cjs <pingone-aic-sim binary> <node_modules folder with frodo-lib and frodo-cli>
//
// The tenant listens on 127.0.0.1:80 (binding it needs root or CAP_NET_BIND_SERVICE): frodo-lib
// writes the default port into the assertion's audience as real AIC on 443 receives it, so a
// tenant on its scheme's default port is reached as a real one is, with no leniency in the
// simulator. Nothing secret is printed: errors are reduced to status and message, with anything
// shaped like a token masked.
'use strict';

require('./loopback-only.cjs');

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { createRequire } = require('node:module');
const { spawn, spawnSync } = require('node:child_process');

const [simBinary, modulesDir] = process.argv.slice(2);
if (!simBinary || !modulesDir) {
  console.error('usage: node check.cjs <pingone-aic-sim binary> <node_modules folder>');
  process.exit(2);
}

const TENANT_PORT = 80;
const SERVICE_ACCOUNT_ID = 'a0f3a5e4-7c1b-4a7e-9a43-2f5a7d1c9e01';
const VARIABLE = 'esv-frodo-check-url';
const SECRET = 'esv-frodo-check-secret';
const WORKER = 'frodo-check-worker';
const LABEL_IDENTIFIER = 'frodo.check';
const LABEL = `am.services.pingone.worker.${LABEL_IDENTIFIER}.clientsecret`;

/** Masks what could be a credential before anything reaches the log. */
function redact(text) {
  return String(text)
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '<jwt>')
    .replace(/(bearer\s+)\S+/gi, '$1<token>');
}

function describe(error) {
  const parts = [error?.message ?? String(error)];
  for (const inner of [error, ...(error?.originalErrors ?? [])]) {
    const response = inner?.response;
    if (response) {
      parts.push(`HTTP ${response.status} ${inner.config?.method?.toUpperCase() ?? ''} ${
        inner.config?.url ?? ''}: ${JSON.stringify(response.data)}`);
    }
  }
  return redact(parts.join(' | '));
}

async function startSimulator(home, publicJwk) {
  const seed = {
    aic: {
      tenants: [{
        name: 'dev',
        tier: 'development',
        port: TENANT_PORT,
        serviceAccounts: [{
          id: SERVICE_ACCOUNT_ID,
          name: 'frodo-check',
          scopes: ['fr:am:*', 'fr:idm:*', 'fr:idc:esv:*', 'fr:idc:promotion:*'],
          jwk: publicJwk,
        }],
      }],
      timings: { restartMs: 1500, lockMs: 300, promotionMs: 500 },
    },
  };
  const seedFile = path.join(home, 'seed.json');
  fs.writeFileSync(seedFile, JSON.stringify(seed));
  const sim = spawn(simBinary, ['--listen', '127.0.0.1:0', '--config', seedFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  sim.stderr.on('data', (chunk) => { stderr += chunk; });
  const lines = readline.createInterface({ input: sim.stdout });
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the simulator printed no URL in 20 s')), 20000);
    sim.on('exit', (code) => reject(new Error(`the simulator exited (${code}): ${stderr}`)));
    lines.on('line', (line) => {
      const [kind, name, url] = line.split(' ');
      if (kind === 'aic' && name === 'dev') {
        clearTimeout(timer);
        resolve(url);
      }
    });
  });
  return { sim, origin };
}

async function main() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'frodo-check-'));
  // frodo keeps its token cache, connection profiles and release check under ~/.frodo: a home
  // of its own keeps the run hermetic, and a fresh release-check stamp keeps frodo-cli from
  // asking GitHub and npm for new versions.
  process.env.HOME = home;
  fs.mkdirSync(path.join(home, '.frodo'));
  fs.writeFileSync(path.join(home, '.frodo', 'Versions.json'), JSON.stringify({
    last_checked: Math.floor(Date.now() / 1000), github: '3.1.0', npm: '3.1.0',
  }));

  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicJwk = publicKey.export({ format: 'jwk' });
  const privateJwk = privateKey.export({ format: 'jwk' });
  const jwkFile = path.join(home, 'service-account.jwk');
  fs.writeFileSync(jwkFile, JSON.stringify(privateJwk), { mode: 0o600 });

  const { sim, origin } = await startSimulator(home, publicJwk);
  const host = `${origin}/am`;
  const results = [];
  try {
    const requireFrodo = createRequire(path.join(path.resolve(modulesDir), 'frodo-check.cjs'));
    const { frodo: defaultFrodo } = requireFrodo('@rockcarver/frodo-lib');
    const frodo = defaultFrodo.createInstanceWithServiceAccount(
      host, SERVICE_ACCOUNT_ID, JSON.stringify(privateJwk), undefined, undefined, true,
    );
    frodo.state.setUseTokenCache(false);

    const step = async (name, body) => {
      try {
        await body();
        results.push([name, null]);
        console.log(`ok     ${name}`);
      } catch (error) {
        results.push([name, error]);
        console.log(`FAILED ${name}: ${describe(error)}`);
      }
    };
    // readVariable decodes `valueBase64` into `value` unless asked not to.
    const valueOf = (variable) => variable.value;
    const noValues = (what, object) => {
      const keys = Object.keys(object).filter((k) => /value/i.test(k));
      assert.deepEqual(keys, [], `${what} carries no secret value`);
    };

    await step('service-account login (serverinfo, JWT bearer grant, svcacct, realm)', async () => {
      const tokens = await frodo.login.getTokens(false, false);
      assert.ok(tokens, 'getTokens gave tokens');
      assert.equal(frodo.state.getDeploymentType(), 'cloud');
      assert.equal(frodo.state.getCookieName().length > 0, true, 'cookie name read');
      assert.match(frodo.state.getAmVersion(), /^7\./);
      assert.equal(frodo.state.getRealm(), 'alpha');
      const info = await frodo.info.getInfo();
      assert.equal(info.deploymentType, 'cloud');
      assert.match(info.amVersion, /^7\./);
      assert.match(String(info.authenticatedSubject), /frodo-check/);
      assert.equal(info.tier, 'development');
      assert.equal(info.immutable, false);
      assert.equal(info.locked, false);
    });

    await step('ESV variable: create, read, update, list', async () => {
      await frodo.cloud.variable.createVariable(VARIABLE, 'https://first.example', 'frodo check', 'string');
      let variable = await frodo.cloud.variable.readVariable(VARIABLE);
      assert.equal(valueOf(variable), 'https://first.example');
      assert.equal(variable.expressionType, 'string');
      assert.equal(variable.loaded, false, 'a new variable is not loaded before a restart');
      await frodo.cloud.variable.updateVariable(VARIABLE, 'https://second.example', 'frodo check');
      variable = await frodo.cloud.variable.readVariable(VARIABLE);
      assert.equal(valueOf(variable), 'https://second.example');
      const all = await frodo.cloud.variable.readVariables();
      assert.ok(all.some((v) => v._id === VARIABLE), 'the list holds the variable');
    });

    await step('ESV secret: create, new version, versions listed, values never returned', async () => {
      const created = await frodo.cloud.secret.createSecret(SECRET, 'first-secret-value', 'frodo check', 'generic', true);
      noValues('the created secret', created);
      assert.equal(created._id, SECRET);
      assert.equal(created.useInPlaceholders, true);
      const version = await frodo.cloud.secret.createVersionOfSecret(SECRET, 'second-secret-value');
      noValues('the new version', version);
      assert.equal(String(version.version), '2');
      const versions = await frodo.cloud.secret.readVersionsOfSecret(SECRET);
      assert.deepEqual(versions.map((v) => String(v.version)).sort(), ['1', '2']);
      versions.forEach((v) => noValues(`version ${v.version}`, v));
      const secret = await frodo.cloud.secret.readSecret(SECRET);
      noValues('the secret', secret);
      assert.equal(String(secret.activeVersion), '2');
    });

    await step('ESV secret versions: disable, then delete the old one', async () => {
      const disabled = await frodo.cloud.secret.disableVersionOfSecret(SECRET, '1');
      assert.equal(disabled.status, 'DISABLED');
      await frodo.cloud.secret.deleteVersionOfSecret(SECRET, '1');
      const versions = await frodo.cloud.secret.readVersionsOfSecret(SECRET);
      const live = versions.filter((v) => v.status !== 'DESTROYED').map((v) => String(v.version));
      assert.deepEqual(live, ['2']);
    });

    await step('ESV count', async () => {
      const count = await frodo.cloud.getEsvCount();
      assert.ok(count.secrets >= 1 && count.variables >= 1, JSON.stringify(count));
    });

    await step('startup: changes listed, restart and wait, loaded after restart', async () => {
      const updates = await frodo.cloud.startup.checkForUpdates();
      assert.ok(updates.variables.some((v) => v._id === VARIABLE), 'the variable awaits a restart');
      assert.ok(updates.secrets.some((s) => s._id === SECRET), 'the secret awaits a restart');
      assert.equal(await frodo.cloud.startup.applyUpdates(true, 60000), true);
      const after = await frodo.cloud.startup.checkForUpdates();
      assert.deepEqual([after.variables.length, after.secrets.length], [0, 0]);
      assert.equal((await frodo.cloud.variable.readVariable(VARIABLE)).loaded, true);
      assert.equal((await frodo.cloud.secret.readSecret(SECRET)).loaded, true);
    });

    await step('worker service: list, export, import with a worker', async () => {
      const services = await frodo.service.getListOfServices();
      assert.ok(services.some((s) => s._id === 'pingOneWorkerService'), 'the realm has the worker service');
      const exported = await frodo.service.exportService('pingOneWorkerService');
      const service = exported.service.pingOneWorkerService;
      assert.ok(service, 'the export holds the service');
      service.nextDescendents = [{
        _id: WORKER,
        _type: { _id: 'workers', name: 'PingOne Worker', collection: true },
        clientId: '6b2f6f1e-93a4-4b86-b4c5-0b4a8f1d2c3e',
        clientSecretPurpose: LABEL_IDENTIFIER,
        environmentId: '9d1c2b3a-4e5f-4a6b-8c7d-1e2f3a4b5c6d',
        apiUrl: 'https://api.pingone.com/v1',
        authUrl: 'https://auth.pingone.com',
      }];
      await frodo.service.importService('pingOneWorkerService', exported, {
        clean: false, global: false, realm: true,
      });
      const again = await frodo.service.exportService('pingOneWorkerService');
      const workers = again.service.pingOneWorkerService.nextDescendents ?? [];
      const worker = workers.find((w) => w._id === WORKER);
      assert.ok(worker, 'the imported worker is exported back');
      assert.equal(worker.clientSecretPurpose, LABEL_IDENTIFIER);
    });

    await step('secret mappings: upsert for the worker label and a fixed label, list', async () => {
      for (const [label, alias] of [[LABEL, SECRET], ['am.services.oauth2.stateless.signing.ES512', 'esv-frodo-check-es512']]) {
        const mapping = await frodo.secretStore.updateSecretStoreMapping(
          'ESV', 'GoogleSecretManagerSecretStoreProvider', { _id: label, secretId: label, aliases: [alias] }, false,
        );
        assert.deepEqual(mapping.aliases, [alias]);
      }
      const mappings = await frodo.secretStore.readSecretStoreMappings(
        'ESV', 'GoogleSecretManagerSecretStoreProvider', false,
      );
      const worker = mappings.find((m) => m._id === LABEL);
      assert.deepEqual(worker?.aliases, [SECRET]);
      assert.ok(mappings.some((m) => m._id === 'am.services.oauth2.stateless.signing.ES512'));
    });

    await step('secret store list is refused as on AIC (403)', async () => {
      await assert.rejects(frodo.secretStore.readSecretStores(false), (error) => {
        const text = describe(error);
        assert.match(text, /403/);
        assert.match(text, /not available in PingOne Advanced Identity Cloud/);
        return true;
      });
    });

    await step('promotion lock state', async () => {
      const state = await frodo.cloud.env.promotion.readLockStatus();
      assert.equal(state.result, 'unlocked');
    });

    await step('frodo-cli: esv variable list, logged in with the service account', async () => {
      const cli = path.join(path.resolve(modulesDir), '@rockcarver', 'frodo-cli', 'dist', 'launch.cjs');
      const run = spawnSync(process.execPath, [
        '--require', path.join(__dirname, 'loopback-only.cjs'), cli,
        'esv', 'variable', 'list', host, '--sa-id', SERVICE_ACCOUNT_ID, '--sa-jwk-file', jwkFile,
        '--no-cache', '--long',
      ], { env: { ...process.env, HOME: home, NO_COLOR: '1' }, encoding: 'utf8', timeout: 60000 });
      const output = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.status, 0, `frodo-cli exited ${run.status}: ${redact(output)}`);
      assert.ok(run.stdout.includes(VARIABLE), `the listing names ${VARIABLE}: ${redact(output)}`);
      assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(output), 'frodo-cli printed no token');
    });

    await step('ESV cleanup: a mapped secret is kept until no mapping names it', async () => {
      // AIC refuses to delete an ESV that configuration references; frodo has no mapping
      // delete, so the mapping is pointed at another alias first.
      await assert.rejects(frodo.cloud.secret.deleteSecret(SECRET), /400/);
      await frodo.secretStore.updateSecretStoreMapping(
        'ESV', 'GoogleSecretManagerSecretStoreProvider', { _id: LABEL, secretId: LABEL, aliases: ['esv-frodo-check-retired'] }, false,
      );
      await frodo.cloud.secret.deleteSecret(SECRET);
      await frodo.cloud.variable.deleteVariable(VARIABLE);
      const all = await frodo.cloud.variable.readVariables();
      assert.ok(!all.some((v) => v._id === VARIABLE), 'the variable is gone');
      await assert.rejects(frodo.cloud.secret.readSecret(SECRET), /404|not found/i);
    });

    await step('every call frodo made has an AIC answer: no 5xx, no unknown endpoint', async () => {
      const calls = await (await fetch(`${origin}/_sim/calls`)).json();
      assert.ok(calls.length > 50, `frodo made ${calls.length} calls`);
      // The refusals the steps above ask for, and nothing else: frodo asks for its default
      // scopes, is told which ones the account lacks (400 invalid_scope, as AIC answers) and asks
      // again without them, once per login; it reads a variable before creating it.
      const expected = [
        [400, 'POST', /^\/am\/oauth2\/access_token$/],
        [404, 'GET', new RegExp(`/environment/variables/${VARIABLE}$`)],
        [403, 'POST', /\/realm-config\/secrets\/stores$/],
        [400, 'DELETE', new RegExp(`/environment/secrets/${SECRET}$`)],
        [404, 'GET', new RegExp(`/environment/secrets/${SECRET}$`)],
      ];
      const unexpected = calls.filter((call) => call.status >= 400 && !expected.some(
        ([status, method, pathPattern]) => call.status === status && call.method === method && pathPattern.test(call.path),
      ));
      assert.deepEqual(unexpected.map((c) => `${c.status} ${c.method} ${c.path}`), []);
    });
  } finally {
    sim.kill('SIGINT');
    fs.rmSync(home, { recursive: true, force: true });
  }

  const failed = results.filter(([, error]) => error);
  console.log(`\nfrodo check: ${results.length - failed.length} of ${results.length} steps passed`);
  process.exit(failed.length === 0 ? 0 : 1);
}

main().catch((error) => {
  console.error(`frodo check could not run: ${describe(error)}`);
  process.exit(1);
});
