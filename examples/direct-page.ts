/**
 * The browser side of the direct-upload page (`/direct` on the example
 * server), bundled by esbuild (`scripts/build-example.mjs`): Uppy with its
 * unmodified `@uppy/aws-s3` plugin in Companion mode, pointed at the
 * server's Companion routes. The bytes go straight to the storage (S3), or
 * to the server's own signed part URLs on the embedded backends: the same
 * code for both.
 *
 * The plugin's calls carry no bearer token, so the page first exchanges the
 * token for a session cookie (`POST /storage/session`).
 */
import AwsS3 from "@uppy/aws-s3"
import Uppy from "@uppy/core"

interface Settings {
  readonly partSize: number
  readonly formUploads: boolean
}

interface Result {
  readonly name: string
  readonly state: "done" | "error"
  readonly key?: string | undefined
  readonly error?: string | undefined
}

declare global {
  interface Window {
    /** What the uploads came to, for people and tests. */
    directUploads: Array<Result>
  }
}

window.directUploads = []

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

const show = (result: Result) => {
  window.directUploads.push(result)
  const item = document.createElement("li")
  item.className = "upload"
  item.dataset["name"] = result.name
  item.dataset["state"] = result.state
  if (result.key !== undefined) item.dataset["key"] = result.key
  item.textContent = `${result.name}: ${result.state === "done" ? result.key : result.error}`
  element("results").append(item)
}

const signIn = async (): Promise<Settings> => {
  const token = element<HTMLInputElement>("token").value
  const session = await fetch("/storage/session", { method: "POST", headers: { authorization: `Bearer ${token}` } })
  if (!session.ok) throw new Error(`sign-in failed: ${session.status}`)
  const settings = await fetch("/storage/companion/settings")
  if (!settings.ok) throw new Error(`settings failed: ${settings.status}`)
  return await settings.json() as Settings
}

const makeUppy = (settings: Settings) => {
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(AwsS3, {
    companionEndpoint: `${location.origin}/storage/companion`,
    // Parts must be the claim's part size exactly: the server signs each for its size.
    getChunkSize: () => settings.partSize,
    // A small file goes as one form upload where the storage signs forms (S3); else in parts.
    shouldUseMultipart: (file) => !settings.formUploads || (file.size ?? 0) > settings.partSize
  })
  // The plugin's create call carries no size: the server reads it from the metadata.
  uppy.on("file-added", (file) => uppy.setFileMeta(file.id, { size: file.size }))
  uppy.on("upload-success", (file, response) => {
    const key = (response.body as { readonly key?: string } | undefined)?.key
    show({ name: file?.name ?? "?", state: "done", key })
  })
  uppy.on("upload-error", (file, error) => show({ name: file?.name ?? "?", state: "error", error: String(error) }))
  return uppy
}

element<HTMLButtonElement>("upload").addEventListener("click", async () => {
  const status = element("status")
  try {
    status.textContent = "signing in"
    const uppy = makeUppy(await signIn())
    for (const file of Array.from(element<HTMLInputElement>("files").files ?? [])) {
      uppy.addFile({ name: file.name, type: file.type, data: file })
    }
    status.textContent = "uploading"
    await uppy.upload()
    status.textContent = "finished"
  } catch (error) {
    status.textContent = `failed: ${String(error)}`
  }
  status.dataset["state"] = status.textContent
})
