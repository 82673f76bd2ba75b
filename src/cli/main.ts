import { Command } from 'commander';
import { registerInspect } from './commands/inspect.js';
import { registerAssign } from './commands/assign.js';
import { registerDemo } from './commands/demo.js';
import { registerDebugfs } from './commands/debugfs.js';
import { registerKiosk } from './commands/kiosk.js';
import { registerControl } from './commands/control.js';

/** Entry point of the `vgpu-flip` CLI. Each command lives in ./commands/<name>.ts. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('vgpu-flip')
    .description('Put a VM\'s vGPU display planes on real hardware planes, zero copies')
    .showHelpAfterError();
  registerInspect(program);
  registerAssign(program);
  registerDemo(program);
  registerDebugfs(program);
  registerKiosk(program);
  registerControl(program);
  await program.parseAsync(argv);
}
