/**
 * The example's Uppy page (browser code, bundled by scripts/build-uppy.mjs):
 * Uppy's dashboard uploading over tus to the storage API's resumable
 * endpoint with the bearer token typed on the page. Each finished upload is
 * listed with its object key (read from the upload's JSON) and a signed
 * download link.
 */
import Uppy from "@uppy/core"
import Dashboard from "@uppy/dashboard"
import Tus from "@uppy/tus"

interface PageConfig {
  readonly endpoint: string
  readonly apiBase: string
  readonly chunkSize?: number
}

const config = JSON.parse(document.getElementById("uppy-config")!.textContent ?? "{}") as PageConfig
const tokenInput = document.getElementById("token") as HTMLInputElement
tokenInput.value = localStorage.getItem("effect-storage.token") ?? ""
tokenInput.addEventListener("change", () => localStorage.setItem("effect-storage.token", tokenInput.value.trim()))
const authorization = () => ({ authorization: `Bearer ${tokenInput.value.trim()}` })

const uppy = new Uppy({ id: "effect-storage" })
  .use(Dashboard, {
    inline: true,
    target: "#dashboard",
    height: 380,
    proudlyDisplayPoweredByUppy: false,
    note: "Resumable uploads over tus: an interrupted upload continues where it stopped."
  })
  .use(Tus, {
    endpoint: config.endpoint,
    headers: () => authorization(),
    removeFingerprintOnSuccess: true,
    ...(config.chunkSize === undefined ? {} : { chunkSize: config.chunkSize })
  })

const done = document.getElementById("done") as HTMLUListElement

uppy.on("upload-success", (file, response) => {
  void (async () => {
    if (file === undefined || response.uploadURL === undefined) return
    // The upload's JSON names the object key a business record adopts.
    const upload = await (await fetch(response.uploadURL, { headers: authorization() })).json() as { key: string }
    const link = await fetch(`${config.apiBase}/storage/links`, {
      method: "POST",
      headers: { ...authorization(), "content-type": "application/json" },
      body: JSON.stringify({ key: upload.key })
    }).then((r) => r.json() as Promise<{ url: string }>)
    const item = document.createElement("li")
    item.className = "done"
    item.dataset["name"] = file.name ?? ""
    item.dataset["key"] = upload.key
    const anchor = document.createElement("a")
    anchor.className = "download"
    anchor.href = `${config.apiBase}${link.url}`
    anchor.textContent = file.name ?? upload.key
    const key = document.createElement("code")
    key.textContent = ` ${upload.key}`
    item.append(anchor, key)
    done.append(item)
  })()
})

Object.assign(window, { uppy })
