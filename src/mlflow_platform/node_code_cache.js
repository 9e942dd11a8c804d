'use strict';
// Preloaded (node --require, through NODE_OPTIONS) into jsii's Node processes by
// mlflow_platform.node_code_cache. Node 20 compiles every CommonJS module from source on each
// start, and a synth loads some 700 of aws-cdk-lib's: this keeps V8's code cache of each module
// in MLFLOW_PLATFORM_NODE_CODE_CACHE, keyed on the module's content, as Python keeps .pyc
// files. Node 22.1 and later do the same themselves (module.enableCompileCache), so there the
// built-in is used instead.
const Module = require('module');

const root = process.env.MLFLOW_PLATFORM_NODE_CODE_CACHE;
if (root && typeof Module.enableCompileCache === 'function') {
  Module.enableCompileCache(root);
} else if (root) {
  install(require('path').join(root, `${process.version}-${process.arch}`));
}

function install(directory) {
  const crypto = require('crypto');
  const fs = require('fs');
  const path = require('path');
  const vm = require('vm');
  const compile = Module.prototype._compile;
  // Modules compiled without a usable cache entry: their entries are written at exit, once
  // the functions V8 compiles lazily have run and can be cached with them.
  const fresh = [];

  Module.prototype._compile = function (content, filename, format) {
    if (format !== undefined && format !== 'commonjs') {
      return compile.apply(this, arguments);
    }
    const entry = path.join(directory, crypto.createHash('sha256').update(content).digest('hex'));
    let cachedData;
    try {
      cachedData = fs.readFileSync(entry);
    } catch {
      cachedData = undefined;
    }
    // A leading #! line stays a comment once wrapped, and keeps the line numbers.
    const source = content.startsWith('#!') ? `//${content}` : content;
    const script = new vm.Script(Module.wrap(source), {
      filename,
      cachedData,
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    });
    if (cachedData === undefined || script.cachedDataRejected) {
      fresh.push([entry, script]);
    }
    const module = this;
    const require = (id) => module.require(id);
    require.resolve = (request, options) => Module._resolveFilename(request, module, false, options);
    require.resolve.paths = (request) => Module._resolveLookupPaths(request, module);
    require.main = process.mainModule;
    require.extensions = Module._extensions;
    require.cache = Module._cache;
    const wrapper = script.runInThisContext({ displayErrors: true });
    return wrapper.call(module.exports, module.exports, require, module, filename, path.dirname(filename));
  };

  process.once('exit', () => {
    if (fresh.length === 0) return;
    try {
      // Compiled code is trusted as the modules themselves are: only this user may write it.
      fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
      for (const [entry, script] of fresh) {
        // Written whole, then renamed: a concurrent reader sees an entry or none.
        const partial = `${entry}.${process.pid}.tmp`;
        fs.writeFileSync(partial, script.createCachedData());
        fs.renameSync(partial, entry);
      }
    } catch {
      // A cache that cannot be written only costs the next run its compile time.
    }
  });
}
