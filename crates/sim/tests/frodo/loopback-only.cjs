// Preloaded into every Node process of the frodo check (`node --require`): refuses any
// connection to an address other than 127.0.0.1, so neither frodo-lib nor frodo-cli can reach
// the network (frodo-cli looks for new releases on GitHub and npm, for instance).
'use strict';

const net = require('node:net');

const LOOPBACK = new Set(['127.0.0.1']);

function targetHost(args) {
  const [first] = args;
  if (Array.isArray(first)) return targetHost(first);
  if (first && typeof first === 'object') return first.host ?? (first.path ? '127.0.0.1' : 'localhost');
  if (typeof args[1] === 'string') return args[1];
  return 'localhost';
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  const host = targetHost(args);
  if (!LOOPBACK.has(host)) {
    throw new Error(`refused: a connection to ${host} (the frodo check talks to 127.0.0.1 only)`);
  }
  return connect.apply(this, args);
};
