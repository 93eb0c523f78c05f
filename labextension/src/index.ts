import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { GenmagicAPI } from './api';
import { readSettings } from './logic';
import { GenmagicSidebar } from './panel';
import iconSvg from '../style/icon.svg';

export const PLUGIN_ID = 'genmagic:sidebar';

export const genmagicIcon = new LabIcon({ name: 'genmagic:icon', svgstr: iconSvg });

/** The genmagic sidebar: models, history and the review queue, from the server extension. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'genmagic: models, history gallery and review queue in the left sidebar',
  autoStart: true,
  requires: [ILabShell],
  optional: [INotebookTracker, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    notebooks: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const sidebar = new GenmagicSidebar({
      api: new GenmagicAPI(app.serviceManager.serverSettings),
      notebookPath: () => notebooks?.currentWidget?.context.path ?? null,
      insertCell: (source: string) => {
        const panel = notebooks?.currentWidget;
        if (!panel) {
          return false;
        }
        const notebook = panel.content;
        NotebookActions.insertBelow(notebook);
        notebook.activeCell?.model.sharedModel.setSource(source);
        shell.activateById(panel.id);
        return true;
      }
    });
    sidebar.title.icon = genmagicIcon;
    sidebar.title.caption = 'genmagic';
    shell.add(sidebar, 'left', { rank: 800 });

    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(
        settings => {
          const apply = () => sidebar.applySettings(readSettings(settings.composite as any));
          apply();
          settings.changed.connect(apply);
        },
        reason => console.error('genmagic: could not load the sidebar settings', reason)
      );
    }
  }
};

export default plugin;
