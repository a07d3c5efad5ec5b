# Build shadowai-agent.msi on Windows (PowerShell 7, .NET SDK 8, network). Steps explained in
# packaging/windows/README.md; run from the repository root: .\packaging\windows\build-msi.ps1 0.1.0
param([Parameter(Mandatory = $true)][string]$Version)
$ErrorActionPreference = "Stop"
$PythonVersion = "3.11.9"
$Stage = Join-Path $env:TEMP "shadowai-msi"
$Payload = Join-Path $Stage "payload"
Remove-Item -Recurse -Force $Stage -ErrorAction SilentlyContinue
New-Item -ItemType Directory -Force (Join-Path $Payload "python") | Out-Null

# 1. An embeddable CPython, with site-packages enabled so that pip can install into it.
$Zip = Join-Path $Stage "python.zip"
Invoke-WebRequest "https://www.python.org/ftp/python/$PythonVersion/python-$PythonVersion-embed-amd64.zip" -OutFile $Zip
Expand-Archive $Zip -DestinationPath (Join-Path $Payload "python")
$Pth = Get-ChildItem (Join-Path $Payload "python") -Filter "python*._pth" | Select-Object -First 1
(Get-Content $Pth.FullName) -replace "^#import site", "import site" | Set-Content $Pth.FullName

# 2. The agent and its dependencies, installed from wheels into that Python.
py -3.11 -m pip wheel --no-deps -w (Join-Path $Stage "wheels") .
$Wheel = Get-ChildItem (Join-Path $Stage "wheels") -Filter "shadowai-*.whl" | Select-Object -First 1
py -3.11 -m pip install --only-binary=:all: --target (Join-Path $Payload "python\Lib\site-packages") "shadowai[agent] @ $($Wheel.FullName)"

# 3. The service wrapper (WinSW v3, x64) renamed after the service, with its XML beside it.
Invoke-WebRequest "https://github.com/winsw/winsw/releases/download/v3.0.0-alpha.11/WinSW-x64.exe" -OutFile (Join-Path $Payload "shadowai-agent-service.exe")
Copy-Item packaging\windows\shadowai-agent.xml (Join-Path $Payload "shadowai-agent-service.xml")

# 4. The MSI.
dotnet tool install --global wix --version 4.0.5
wix build packaging\windows\shadowai-agent.wxs -arch x64 -d Version=$Version -d Payload=$Payload -d Config=packaging\etc\agent.toml -o "shadowai-agent-$Version.msi"
