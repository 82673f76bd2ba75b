import type { Command } from 'commander';

// placeholder: the owner of this command replaces this file
export function registerDebugfs(program: Command): void {
  program.command('debugfs').description('(not implemented yet)').action(() => {
    throw new Error('debugfs is not implemented yet');
  });
}
