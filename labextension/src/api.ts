import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The server extension's REST API (genmagic/server): token and XSRF come from ServerConnection. */
export class GenmagicAPI {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, 'genmagic', 'api', path);
  }

  async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await ServerConnection.makeRequest(this.url(path), init, this.settings);
    const text = await response.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.message) || `${response.status} ${response.statusText}`);
    }
    return data as T;
  }

  get<T>(path: string, query = ''): Promise<T> {
    return this.request<T>(query ? `${path}?${query}` : path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>(path, { method: 'POST', body: JSON.stringify(body) });
  }

  /** The URL of an image blob, or its thumbnail (`size` one of 64, 128, 256, 512). */
  imageUrl(name: string, size?: number): string {
    const path = size ? `thumbs/${size}/${encodeURIComponent(name)}` : `images/${encodeURIComponent(name)}`;
    return this.url(path);
  }
}
